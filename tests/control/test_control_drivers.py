"""Drivers are chosen by URL; an unknown scheme is a clear error, not a silent default."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatehouse.bus import MemoryBus
from gatehouse.config import Settings
from gatehouse.control.drivers import open_bus, open_store
from gatehouse.crypto import SigningKey
from gatehouse.errors import BadRequest
from gatehouse.store.sqlite import SQLiteStore


def test_the_default_urls_are_the_embedded_drivers(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.store_url == f"sqlite:///{tmp_path / 'gatehouse.db'}"
    assert settings.bus_url == "memory://"
    assert Settings(data_dir=tmp_path, store_url="sqlite:///x.db").store_url == "sqlite:///x.db"


def test_a_sqlite_url_opens_the_file_it_names(tmp_path: Path) -> None:
    store = open_store(
        f"sqlite:///{tmp_path}/a.db", audit_key=SigningKey.generate(), checkpoint_every=5, audit=True
    )
    assert isinstance(store, SQLiteStore) and store.path == f"{tmp_path}/a.db"
    assert isinstance(open_bus("memory://"), MemoryBus)


@pytest.mark.parametrize("url", ["postgres://db/gh", "redis://x", "gatehouse.db", "sqlite://"])
def test_an_unknown_or_malformed_store_url_is_refused(url: str) -> None:
    with pytest.raises(BadRequest) as caught:
        open_store(url, audit_key=SigningKey.generate(), checkpoint_every=5, audit=True)
    assert caught.value.code == "invalid_store_url"


@pytest.mark.parametrize("url", ["nats://localhost:4222", "memory", ""])
def test_an_unknown_bus_url_is_refused(url: str) -> None:
    with pytest.raises(BadRequest) as caught:
        open_bus(url)
    assert caught.value.code == "invalid_bus_url"

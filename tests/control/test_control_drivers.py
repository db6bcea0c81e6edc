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


def test_postgresql_and_nats_urls_choose_the_scale_out_drivers() -> None:
    from gatehouse.bus.nats import NatsBus
    from gatehouse.store.postgres import PostgresStore

    for url in ("postgresql://gh@db:5432/gh", "postgres://gh@db/gh"):
        store = open_store(url, audit_key=SigningKey.generate(), checkpoint_every=5, audit=True)
        assert isinstance(store, PostgresStore) and store.url == url
    bus = open_bus("nats://localhost:4222")
    assert isinstance(bus, NatsBus) and bus.url == "nats://localhost:4222"


def test_a_bad_role_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BadRequest) as caught:
        Settings(data_dir=tmp_path, role="worker")
    assert caught.value.code == "invalid_role"


@pytest.mark.parametrize("url", ["mysql://db/gh", "redis://x", "gatehouse.db", "sqlite://"])
def test_an_unknown_or_malformed_store_url_is_refused(url: str) -> None:
    with pytest.raises(BadRequest) as caught:
        open_store(url, audit_key=SigningKey.generate(), checkpoint_every=5, audit=True)
    assert caught.value.code == "invalid_store_url"


@pytest.mark.parametrize("url", ["kafka://localhost:9092", "memory", ""])
def test_an_unknown_bus_url_is_refused(url: str) -> None:
    with pytest.raises(BadRequest) as caught:
        open_bus(url)
    assert caught.value.code == "invalid_bus_url"

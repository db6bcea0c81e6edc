"""Shared fixtures: real `gatehouse serve` processes (see `harness.py`)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import SEED, Server
from services import stop_all


@pytest.fixture(scope="session", autouse=True)
def _services() -> Iterator[None]:
    """PostgreSQL and nats-server, when a test started them (`services.py`), stop at the end."""
    yield
    stop_all()


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Any]:
    started: list[Server] = []

    def make(
        policy: Path | None = SEED,
        *args: str,
        data_dir: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> Server:
        s = Server(
            data_dir=data_dir or tmp_path / f"data{len(started)}",
            policy=policy,
            extra_args=list(args),
            env=env or {},
        )
        started.append(s)
        return s.start()

    yield make
    for s in started:
        s.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for a whole test module, on the seed policy."""
    s = Server(data_dir=tmp_path_factory.mktemp("gh") / "data", policy=SEED).start()
    yield s
    s.stop()

"""The store backends the contract suite runs on: one factory per backend.

A new driver joins by adding its factory to `STORES` (PostgreSQL: build it from
`$GATEHOUSE_TEST_POSTGRES_URL` and `pytest.skip` when unset); every test in `test_store.py` then
runs on it unchanged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from gatehouse.crypto import SigningKey
from gatehouse.store.base import Store
from gatehouse.store.memory import MemoryStore
from gatehouse.store.sqlite import SQLiteStore

# Small enough that the tests cross it; the server default is 100.
CHECKPOINT_EVERY = 5

StoreFactory = Callable[[Path, SigningKey], Store]

STORES: dict[str, StoreFactory] = {
    "memory": lambda tmp, key: MemoryStore(audit_key=key, checkpoint_every=CHECKPOINT_EVERY),
    "sqlite": lambda tmp, key: SQLiteStore(
        path=tmp / "gatehouse.db", audit_key=key, checkpoint_every=CHECKPOINT_EVERY
    ),
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def audit_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture(params=sorted(STORES))
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, audit_key: SigningKey
) -> AsyncIterator[Store]:
    made = STORES[request.param](tmp_path, audit_key)
    await made.open()
    yield made
    await made.close()

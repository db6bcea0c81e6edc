"""The store backends the contract suite runs on: one factory per backend.

A new driver joins by adding its factory to `STORES`; every test in `test_store.py` then runs on
it unchanged. PostgreSQL runs on a real server the session starts on first use
(`tests/services.py`), one fresh database per test. (A module of its own, not the conftest:
tests import these names, and every test folder has a `conftest` module of that one name.)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import services

from gatehouse.crypto import SigningKey
from gatehouse.store.base import Store
from gatehouse.store.memory import MemoryStore
from gatehouse.store.sqlite import SQLiteStore

__all__ = ["CHECKPOINT_EVERY", "STORES", "StoreFactory"]

# Small enough that the tests cross it; the server default is 100.
CHECKPOINT_EVERY = 5

StoreFactory = Callable[[Path, SigningKey], Store]

STORES: dict[str, StoreFactory] = {
    "memory": lambda tmp, key: MemoryStore(audit_key=key, checkpoint_every=CHECKPOINT_EVERY),
    "sqlite": lambda tmp, key: SQLiteStore(
        path=tmp / "gatehouse.db", audit_key=key, checkpoint_every=CHECKPOINT_EVERY
    ),
}


def _postgres(tmp: Path, key: SigningKey) -> Store:
    from gatehouse.store.postgres import PostgresStore

    url = services.postgres().new_database()
    return PostgresStore(url=url, audit_key=key, checkpoint_every=CHECKPOINT_EVERY, pool_size=4)


STORES["postgres"] = _postgres

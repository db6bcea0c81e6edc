"""The store backends the contract suite runs on: one factory per backend.

A new driver joins by adding its factory to `STORES` (PostgreSQL: build it from
`$GATEHOUSE_TEST_POSTGRES_URL` and `pytest.skip` when unset); every test in `test_store.py` then
runs on it unchanged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from store_backends import STORES

from gatehouse.crypto import SigningKey
from gatehouse.store.base import Store


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

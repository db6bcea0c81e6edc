"""Fixtures of the broker tests: loopback upstreams that count connections, a resolver seam."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from upstream_server import Upstream

from gatehouse.broker.transport import PinnedTransport


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    server = await Upstream().start()
    yield server
    await server.stop()


@pytest.fixture
async def other_upstream() -> AsyncIterator[Upstream]:
    """A second server: the forbidden place a redirect or a rebinding tries to reach."""
    server = await Upstream().start()
    yield server
    await server.stop()


@pytest.fixture
async def transport() -> AsyncIterator[PinnedTransport]:
    made = PinnedTransport()
    yield made
    await made.aclose()

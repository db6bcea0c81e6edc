"""The NATS bus between replicas: what one publishes, the others get (JetStream wake-ups and
core broadcasts alike); a server that is not there is a clear error at start."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import services
from harness import free_port

from gatehouse.bus.nats import NatsBus
from gatehouse.bus.subjects import JOBS_QUEUED, POLICY_CHANGED
from gatehouse.errors import Unavailable

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_messages_cross_between_two_connections() -> None:
    url = services.nats().url
    a, b = NatsBus(url=url), NatsBus(url=url)
    await a.open()
    await b.open()
    try:
        got: dict[str, list[dict[str, Any]]] = {JOBS_QUEUED: [], POLICY_CHANGED: []}
        arrived = asyncio.Event()

        def keep(subject: str) -> Any:
            async def handler(data: dict[str, Any]) -> None:
                got[subject].append(data)
                if all(got.values()):
                    arrived.set()

            return handler

        for subject in got:
            await b.subscribe(subject, keep(subject))
        assert await a.ping() is None and b.connected()
        await a.publish(JOBS_QUEUED, {"job_id": "job_1", "topic": "job.demo.echo"})
        await a.publish(POLICY_CHANGED, {"snapshot": "s1"})
        await asyncio.wait_for(arrived.wait(), 5)
        assert got == {
            JOBS_QUEUED: [{"job_id": "job_1", "topic": "job.demo.echo"}],
            POLICY_CHANGED: [{"snapshot": "s1"}],
        }
    finally:
        await a.close()
        await b.close()
    assert await a.ping() == "bus disconnected"


async def test_a_burst_of_wake_ups_wakes_the_subscribers_once_with_the_latest() -> None:
    # A wake-up is a hint: fifty submits in a burst cost one acknowledged publish, not fifty.
    url = services.nats().url
    a, b = NatsBus(url=url), NatsBus(url=url)
    await a.open()
    await b.open()
    try:
        got: list[dict[str, Any]] = []
        last = asyncio.Event()

        async def handler(data: dict[str, Any]) -> None:
            got.append(data)
            if data["job_id"] == "job_49":
                last.set()

        await b.subscribe(JOBS_QUEUED, handler)
        for i in range(50):
            await a.publish(JOBS_QUEUED, {"job_id": f"job_{i}", "topic": "job.demo.echo"})
        await asyncio.wait_for(last.wait(), 5)
        await asyncio.sleep(0.2)
        assert 1 <= len(got) < 10 and got[-1] == {"job_id": "job_49", "topic": "job.demo.echo"}
    finally:
        await a.close()
        await b.close()


async def test_a_bus_that_is_not_there_is_unavailable() -> None:
    bus = NatsBus(url=f"nats://127.0.0.1:{free_port()}", connect_timeout=1)
    with pytest.raises(Unavailable) as down:
        await bus.open()
    assert down.value.code == "bus_unavailable"

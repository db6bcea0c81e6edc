"""One contract for every bus: each test runs on every backend of `BUSES`.

A new driver joins by adding its factory (NATS: a real nats-server with JetStream, started on
first use, `tests/services.py`). Delivery is asynchronous on every driver, so the tests wait for what
they expect with a deadline, and give a driver the same time to deliver what it must not.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import services

from gatehouse.bus import Bus, MemoryBus
from gatehouse.bus.subjects import IDENTITY_REVOKED, JOBS_QUEUED, POLICY_CHANGED, SUBJECTS

pytestmark = pytest.mark.anyio


def _nats() -> Bus:
    from gatehouse.bus.nats import NatsBus

    return NatsBus(url=services.nats().url)


BUSES: dict[str, Callable[[], Bus]] = {
    "memory": MemoryBus,
    "nats": _nats,
}
# How long a message may take to arrive, and how long we wait to be sure one did not.
DEADLINE = 2.0
QUIET = 0.2


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=sorted(BUSES))
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[Bus]:
    made = BUSES[request.param]()
    await made.open()
    yield made
    await made.close()


class Inbox:
    """A handler that keeps what it gets, and lets a test wait for it."""

    def __init__(self) -> None:
        self.got: list[dict[str, Any]] = []
        self._changed = asyncio.Event()

    async def __call__(self, data: dict[str, Any]) -> None:
        self.got.append(data)
        self._changed.set()

    async def wait_for(self, count: int) -> list[dict[str, Any]]:
        async def reached() -> None:
            while len(self.got) < count:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(reached(), DEADLINE)
        return self.got


def test_the_subjects_are_named_once_and_distinct() -> None:
    assert SUBJECTS == (JOBS_QUEUED, POLICY_CHANGED, IDENTITY_REVOKED)
    assert len(set(SUBJECTS)) == len(SUBJECTS)


async def test_a_subscriber_gets_what_is_published_on_its_subject(bus: Bus) -> None:
    inbox = Inbox()
    await bus.subscribe(JOBS_QUEUED, inbox)
    await bus.publish(JOBS_QUEUED, {"job_id": "job_1", "topic": "job.demo.echo"})
    assert await inbox.wait_for(1) == [{"job_id": "job_1", "topic": "job.demo.echo"}]


async def test_a_subscriber_gets_nothing_of_other_subjects(bus: Bus) -> None:
    inbox, other = Inbox(), Inbox()
    await bus.subscribe(POLICY_CHANGED, inbox)
    await bus.subscribe(JOBS_QUEUED, other)
    await bus.publish(JOBS_QUEUED, {"job_id": "job_1"})
    await other.wait_for(1)
    await asyncio.sleep(QUIET)
    assert inbox.got == []


async def test_every_subscriber_of_a_subject_gets_every_message(bus: Bus) -> None:
    inboxes = [Inbox() for _ in range(3)]
    for inbox in inboxes:
        await bus.subscribe(IDENTITY_REVOKED, inbox)
    for i in range(5):
        await bus.publish(IDENTITY_REVOKED, {"id": f"idn_{i}"})
    for inbox in inboxes:
        got = await inbox.wait_for(5)
        assert sorted(d["id"] for d in got) == [f"idn_{i}" for i in range(5)]


async def test_after_unsubscribe_the_handler_gets_nothing_more(bus: Bus) -> None:
    gone, staying = Inbox(), Inbox()
    subscription = await bus.subscribe(JOBS_QUEUED, gone)
    await bus.subscribe(JOBS_QUEUED, staying)
    await bus.publish(JOBS_QUEUED, {"n": 1})
    await gone.wait_for(1)
    await subscription.unsubscribe()
    await subscription.unsubscribe()  # idempotent
    await bus.publish(JOBS_QUEUED, {"n": 2})
    await staying.wait_for(2)
    await asyncio.sleep(QUIET)
    assert gone.got == [{"n": 1}]


async def test_a_failing_or_slow_handler_neither_fails_nor_blocks_the_publisher(bus: Bus) -> None:
    release = asyncio.Event()

    async def broken(_: dict[str, Any]) -> None:
        raise RuntimeError("a broken subscriber")

    async def slow(_: dict[str, Any]) -> None:
        await release.wait()

    inbox = Inbox()
    await bus.subscribe(POLICY_CHANGED, broken)
    await bus.subscribe(POLICY_CHANGED, slow)
    await bus.subscribe(POLICY_CHANGED, inbox)
    await asyncio.wait_for(bus.publish(POLICY_CHANGED, {"snapshot": "s1"}), DEADLINE)
    await asyncio.wait_for(bus.publish(POLICY_CHANGED, {"snapshot": "s2"}), DEADLINE)
    assert len(await inbox.wait_for(2)) == 2
    release.set()


async def test_after_close_nothing_is_delivered_and_publish_drops(bus: Bus) -> None:
    inbox = Inbox()
    await bus.subscribe(JOBS_QUEUED, inbox)
    await bus.close()
    await bus.publish(JOBS_QUEUED, {"job_id": "job_1"})  # dropped, not raised
    await asyncio.sleep(QUIET)
    assert inbox.got == []

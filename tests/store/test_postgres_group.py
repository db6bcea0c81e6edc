"""Group commit (`store.postgres.group`): writes queued while one is in flight go together in the
next; a write that fails alone fails only itself; a failure of the batch reaches every caller."""

from __future__ import annotations

import asyncio

import pytest

from gatehouse.store.postgres.group import GroupCommit

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Duplicate(Exception):
    pass


class Recorder:
    """A `write` that keeps its batches, refuses a batch holding a duplicate, and can fail."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.stored: set[int] = set()
        self.down = False

    async def write(self, items: list[int]) -> list[str]:
        await asyncio.sleep(0.01)  # a transaction's round trips
        if self.down:
            raise ConnectionError("database down")
        if len(set(items)) < len(items) or self.stored & set(items):
            raise Duplicate(items)
        self.batches.append(items)
        self.stored |= set(items)
        return [f"stored {i}" for i in items]


async def test_writes_made_while_one_is_in_flight_go_together_in_the_next() -> None:
    rec = Recorder()
    group = GroupCommit(rec.write)
    first = asyncio.create_task(group(0))
    await asyncio.sleep(0)  # the first write is in flight alone
    rest = [asyncio.create_task(group(i)) for i in range(1, 20)]
    assert await asyncio.gather(first, *rest) == [f"stored {i}" for i in range(20)]
    assert rec.batches == [[0], list(range(1, 20))]
    assert await group(20) == "stored 20"  # with nothing in flight, a batch of one
    assert rec.batches[-1] == [20]


async def test_a_batch_is_bounded() -> None:
    rec = Recorder()
    group = GroupCommit(rec.write, limit=8)
    await asyncio.gather(*(group(i) for i in range(20)))
    assert [len(b) for b in rec.batches] == [8, 8, 4]


async def test_a_duplicate_fails_only_itself() -> None:
    rec = Recorder()
    group = GroupCommit(rec.write, alone=(Duplicate,))
    await group(1)
    results = await asyncio.gather(*(group(i) for i in (2, 1, 3, 3)), return_exceptions=True)
    assert results[0] == "stored 2" and isinstance(results[1], Duplicate)
    assert sorted(r if isinstance(r, str) else "duplicate" for r in results[2:]) == ["duplicate", "stored 3"]
    assert rec.stored == {1, 2, 3}


async def test_a_failed_batch_fails_every_caller_and_the_next_write_goes_on() -> None:
    rec = Recorder()
    group = GroupCommit(rec.write, alone=(Duplicate,))
    rec.down = True
    results = await asyncio.gather(*(group(i) for i in range(5)), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    assert rec.batches == []
    rec.down = False
    assert await group(9) == "stored 9"


async def test_a_cancelled_caller_still_has_its_write_made() -> None:
    rec = Recorder()
    group = GroupCommit(rec.write)
    first = asyncio.create_task(group(1))
    second = asyncio.create_task(group(2))
    await asyncio.sleep(0)
    second.cancel()
    assert await first == "stored 1"
    await asyncio.sleep(0.05)
    assert rec.stored == {1, 2}

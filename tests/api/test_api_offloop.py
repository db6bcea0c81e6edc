"""`off_loop` runs a coroutine on a worker thread while `on_loop` keeps a store's coroutine
methods on the server's loop (where an SQLite connection lives)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from gatehouse.api.offloop import off_loop, on_loop

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class _Store:
    def __init__(self) -> None:
        self.threads: list[int] = []
        self.name = "plain attribute"

    async def read(self, n: int) -> int:
        self.threads.append(threading.get_ident())
        return n * 2


async def test_the_work_runs_off_the_loop_and_the_reads_on_it() -> None:
    store = _Store()
    loop_thread = threading.get_ident()
    seen: dict[str, int] = {}

    async def work(s: _Store) -> int:
        seen["work"] = threading.get_ident()
        total = 0
        for i in range(3):
            total += await s.read(i)
        time.sleep(0.3)  # CPU-bound hashing, as far as the loop can tell
        return total

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    tick = asyncio.create_task(ticker())
    assert await off_loop(work(on_loop(store))) == 6
    tick.cancel()
    assert seen["work"] != loop_thread
    assert store.threads == [loop_thread] * 3
    assert on_loop(store).name == "plain attribute"
    assert ticks > 10  # the loop kept running while the work slept

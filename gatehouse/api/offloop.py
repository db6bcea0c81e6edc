"""Running a long coroutine off the event loop, with its store reads kept on the loop.

`GET /api/v1/audit/verify` hashes every entry of the log: ~17 µs each, most of a second at
50,000 entries, during which the server answered nothing (probe F11). `off_loop(coro)` runs the
coroutine on a worker thread with a loop of its own; `on_loop(store)` hands it the store with
every async method sent back to the server's loop, so the store's connection is only ever used
where it lives (an SQLite connection is not shared between threads mid-transaction), while the
hashing between reads runs on the worker thread.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["off_loop", "on_loop"]

T = TypeVar("T")


async def off_loop(coro: Coroutine[Any, Any, T]) -> T:
    """`await coro`, run on a worker thread."""
    return await asyncio.to_thread(asyncio.run, coro)


class _OnLoop:
    def __init__(self, target: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._target = target
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if not inspect.iscoroutinefunction(attr):
            return attr
        return self._bridge(attr)

    def _bridge(self, method: Callable[..., Coroutine[Any, Any, Any]]) -> Callable[..., Any]:
        loop = self._loop

        async def call(*args: Any, **kwargs: Any) -> Any:
            future = asyncio.run_coroutine_threadsafe(method(*args, **kwargs), loop)
            return await asyncio.wrap_future(future)

        return call


def on_loop(target: T) -> T:
    """`target` (a store) whose coroutine methods run on the current (the server's) loop."""
    proxy: Any = _OnLoop(target, asyncio.get_running_loop())
    return proxy  # type: ignore[no-any-return]

"""Group commit: the writes that queue while one transaction commits go together in the next.

Every submit appends to its tenant's audit stream, whose head row the appending transaction
locks until it commits (that is what keeps one chain order across replicas). With one
transaction per submit, a loaded replica's transactions queued on that row inside the database:
64 submits in flight held ten connections waiting on the lock while the holder waited for a busy
event loop to send its next statement, and the database spent more CPU on the queue than on the
work. So a replica writes such rows one transaction at a time, each carrying every write that
queued meanwhile: the lock is taken once per batch, the statements are multi-row, the round
trips are shared. Nothing waits for a timer: with nothing else in flight a batch is one write.

A batch is one transaction, so one bad write (a duplicate key) would fail the others: on the
exceptions named `alone`, each write of the batch is retried in a transaction of its own, for
its own answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["GroupCommit"]

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    """`await group(item)`: `item` written by `write([...])` with the items queued beside it."""

    def __init__(
        self,
        write: Callable[[list[T]], Awaitable[list[R]]],
        *,
        alone: tuple[type[BaseException], ...] = (),
        limit: int = 256,
    ) -> None:
        self._write = write
        self._alone = alone
        self._limit = limit
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        # One transaction at a time (a second would only queue on the head lock it holds).
        self._task: asyncio.Task[None] | None = None

    async def __call__(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._task is None:
            self._task = asyncio.create_task(self._drain())
        # A caller cancelled meanwhile (its client went away) still has its write made, as a
        # transaction committed after the client left would be.
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[: self._limit], self._queue[self._limit :]
                await self._run(batch)
        finally:
            self._task = None

    async def _run(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._write([item for item, _ in batch])
        except self._alone as exc:
            if len(batch) == 1:
                _settle(batch[0][1], exc=exc)
                return
            await asyncio.gather(*(self._run([pending]) for pending in batch))
            return
        except BaseException as exc:  # each caller gets it: nothing is lost in silence
            for _, future in batch:
                _settle(future, exc=exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        for (_, future), result in zip(batch, results, strict=True):
            _settle(future, result=result)


def _settle(future: asyncio.Future[R], *, result: R | None = None, exc: BaseException | None = None) -> None:
    if future.done():  # its caller was cancelled
        return
    if isinstance(exc, asyncio.CancelledError):
        future.cancel()
    elif exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)  # type: ignore[arg-type]

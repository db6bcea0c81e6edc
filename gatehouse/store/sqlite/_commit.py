"""Group commit for the SQLite store: the writes that arrive together share one transaction.

Under load most of a write's cost is the commit (SQLite writes every page the transaction touched
to the WAL: the job row, its indexes, the decision record, the audit entries), and concurrent
submits touch the same pages. So a write is queued, and at the next turn of the event loop all
queued writes run in one `BEGIN IMMEDIATE ... COMMIT`, each inside its own savepoint: a write
that raises is rolled back alone and only its caller sees the error. No caller is answered
before the commit that holds its write, so an acknowledged write survives a crash exactly as
before, and callers see the same serial order they would one transaction at a time.
"""

from __future__ import annotations

import asyncio
import contextvars
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["GroupCommit"]

T = TypeVar("T")

_Op = tuple[Callable[[sqlite3.Connection], Any], "asyncio.Future[Any]", contextvars.Context]


class GroupCommit:
    def __init__(
        self,
        db: sqlite3.Connection,
        *,
        max_batch: int = 256,
        on_abort: Callable[[], object] | None = None,
        on_commit: Callable[[int], object] | None = None,
    ) -> None:
        self.db = db
        self.max_batch = max_batch
        self.on_abort = on_abort  # told when a whole batch is rolled back (drop derived caches)
        self.on_commit = on_commit  # told how many writes each commit held
        self._pending: list[_Op] = []
        self._scheduled = False
        self.batches = 0
        self.writes = 0

    def write(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Run `fn(db)` inside the next group transaction; the future resolves after COMMIT.

        `fn` runs in the caller's context (audit actor and request id are context variables).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._pending.append((fn, future, contextvars.copy_context()))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self.flush)
        return future

    def flush(self) -> None:
        """Commit everything queued (also called directly before the store closes)."""
        self._scheduled = False
        while self._pending:
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            self._run(batch)

    def _run(self, batch: list[_Op]) -> None:
        db = self.db
        outcomes: list[tuple[asyncio.Future[Any], BaseException | None, Any]] = []
        try:
            db.execute("BEGIN IMMEDIATE")
            for fn, future, ctx in batch:
                if future.done():  # the caller gave up (cancelled) before its write ran
                    continue
                db.execute("SAVEPOINT op")
                try:
                    value = ctx.run(fn, db)
                except Exception as exc:  # delivered to the caller whose write it was
                    db.execute("ROLLBACK TO op")
                    db.execute("RELEASE op")
                    outcomes.append((future, exc, None))
                else:
                    db.execute("RELEASE op")
                    outcomes.append((future, None, value))
            db.execute("COMMIT")
        except Exception as exc:  # the batch failed as a whole: nobody is answered "done"
            if db.in_transaction:
                db.execute("ROLLBACK")
            if self.on_abort is not None:
                self.on_abort()
            for _fn, future, _ctx in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        self.batches += 1
        self.writes += len(outcomes)
        if self.on_commit is not None:
            self.on_commit(len(outcomes))
        for future, error, value in outcomes:
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(value)

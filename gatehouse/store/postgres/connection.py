"""The PostgreSQL connection pool the driver's modules share: opening, transactions, the audit.

Many replicas write one database, so nothing is cached that another process could change (but
API keys, `_keycache`, for two seconds): every write is one transaction that reads what it
changes under a row lock or as a compare-and-set, and the audit heads it appends to are locked
in that same transaction (`_sink`). A deadlock or serialization failure, which PostgreSQL
resolves by failing one of the transactions, is retried from the start a few times.

An unreachable database is `Unavailable` (503 at the API, a clear message at start); the pool
reconnects on its own when the database is back, so a replica recovers without a restart.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg

from gatehouse.audit.chain import Checkpoint
from gatehouse.audit.events import AuditEvent
from gatehouse.audit.witness import Witness
from gatehouse.audit.writer import AuditWriter
from gatehouse.crypto import SigningKey
from gatehouse.errors import Unavailable
from gatehouse.store._keycache import KeyCache
from gatehouse.store._url import redact_url
from gatehouse.store.postgres import _sink
from gatehouse.store.postgres.schema import migrate

__all__ = ["PostgresBase"]

log = logging.getLogger("gatehouse.store")

T = TypeVar("T")
# Audit events and the context of the request that made them (None: the current one).
_Group = tuple[contextvars.Context | None, Sequence[AuditEvent]]

# pg_advisory_xact_lock key of sealing ("gh-seal!"): one replica signs roots at a time.
_SEAL_LOCK = 0x67682D7365616C21
_RETRIES = 5
# Errors that mean "the database is not there right now", as opposed to a bad statement.
_DOWN = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    # A pooled connection whose backend was terminated while it sat idle answers its next query
    # with this protocol-state error (MagicStack/asyncpg#1069) before the pool notices it closed:
    # the database went away under it, not a bad statement.
    asyncpg.InternalClientError,
)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """What a connection needs on its way back to the pool beyond asyncpg's own rollback of a
    transaction left open: nothing. By default asyncpg also sends `pg_advisory_unlock_all();
    CLOSE ALL; UNLISTEN *; RESET ALL` on every release, a round trip (three per submit with the
    scheduler's reads) undoing session state this driver never creates on pooled connections:
    its advisory locks are transaction-scoped (`pg_advisory_xact_lock`), the migration's session
    lock is taken on a connection of its own, and it neither LISTENs, SETs nor keeps cursors."""


class PostgresBase:
    """Pool, transactions and the audit writer: what every concern uses."""

    def __init__(
        self,
        *,
        url: str,
        audit_key: SigningKey | None = None,
        checkpoint_every: int = 100,
        audit: bool = True,
        audit_witness: Witness | None = None,
        pool_size: int = 10,
        connect_timeout: float = 5.0,
    ) -> None:
        self.url = url
        self.pool_size = pool_size
        self.connect_timeout = connect_timeout
        self._pool: asyncpg.Pool | None = None
        # Several processes append: the writer asks the (locked) head every time.
        self.writer = AuditWriter(
            key=audit_key,
            checkpoint_every=checkpoint_every,
            enabled=audit,
            witness=audit_witness,
            single_writer=False,
        )
        self._keys = KeyCache()

    @property
    def audit_key(self) -> SigningKey | None:
        return self.writer.key

    @property
    def pool(self) -> asyncpg.Pool:
        assert self._pool is not None, "store is not open"
        return self._pool

    async def open(self) -> None:
        try:
            conn = await asyncpg.connect(self.url, timeout=self.connect_timeout)
        except _DOWN as exc:
            raise Unavailable(
                f"cannot reach the database at {redact_url(self.url)}: {exc}",
                details={"url": redact_url(self.url)},
            ) from None
        try:
            await migrate(conn)
        finally:
            await conn.close()
        self._pool = await asyncpg.create_pool(
            self.url,
            min_size=1,
            max_size=self.pool_size,
            timeout=self.connect_timeout,
            # A connection the database dropped is replaced, not reused.
            max_inactive_connection_lifetime=60.0,
            reset=_keep_session,
        )

    async def close(self) -> None:
        if self._pool is None:
            return
        try:
            if self.writer.enabled and self.writer.key is not None:
                await self._seal_now(final=True)
        except (Unavailable, *_DOWN):
            log.warning("could not sign the audit heads at close: the database is unreachable")
        finally:
            pool, self._pool = self._pool, None
            await pool.close()
            if self.writer.witness is not None:
                self.writer.witness.close()

    async def ping(self) -> str | None:
        """None when the database answers within a second, else why not (for `/readyz`)."""
        if self._pool is None:
            return "store is not open"
        try:
            await asyncio.wait_for(self._pool.fetchval("SELECT 1"), 1.0)
        except (*_DOWN, asyncpg.PostgresError) as exc:
            return f"database unreachable: {type(exc).__name__}"
        return None

    # reading ---------------------------------------------------------------------------------
    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        try:
            found: list[asyncpg.Record] = await self.pool.fetch(sql, *args)
            return found
        except _DOWN as exc:
            raise self._unavailable(exc) from None

    async def _fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        try:
            return await self.pool.fetchrow(sql, *args)
        except _DOWN as exc:
            raise self._unavailable(exc) from None

    def _unavailable(self, exc: BaseException) -> Unavailable:
        return Unavailable(f"the database is unreachable ({type(exc).__name__})")

    # writing --------------------------------------------------------------------------------
    async def _write(self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run `fn(conn)` in one transaction; retried whole after a deadlock or a serialization
        failure. An exception from `fn` rolls everything back and reaches the caller."""
        for attempt in range(_RETRIES):
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    result = await fn(conn)
            except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError):
                if attempt == _RETRIES - 1:
                    raise
                await asyncio.sleep(random.uniform(0, 0.005 * 2**attempt))
                continue
            except _DOWN as exc:
                # Rolled back by the database when the connection went: nothing half-written.
                raise self._unavailable(exc) from None
            self.writer.committed()
            return result
        raise AssertionError("unreachable")

    async def _append_audit(self, conn: asyncpg.Connection, events: Sequence[AuditEvent]) -> None:
        """Chain `events` onto their streams inside the caller's transaction, the heads locked."""
        await self._append_audit_groups(conn, [(None, events)])

    async def _append_audit_groups(self, conn: asyncpg.Connection, groups: Sequence[_Group]) -> None:
        """`_append_audit` for the writes of a group commit (`group`): each group's events are
        chained in the context of the request that made them (the actor and request id an entry
        records are context variables), all under one lock of the heads."""
        events = [e for _, evs in groups for e in evs]
        if not events or not self.writer.enabled:
            return
        sink = await _sink.lock_heads(conn, (e.stream for e in events))
        key, every = self.writer.key, self.writer.checkpoint_every
        if key is not None:
            counts: dict[str, int] = {}
            for e in events:
                counts[e.stream] = counts.get(e.stream, 0) + 1
            crossing = [
                s
                for s, n in counts.items()
                if ((h.seq if (h := sink.heads.get(s)) else 0) + n) // every
                > (h.seq if (h := sink.heads.get(s)) else 0) // every
            ]
            if crossing:
                await _sink.load_checkpoints(conn, sink, crossing)
        # The writer is synchronous: nothing else runs on this loop while it chains, and its
        # journal is trimmed when the block ends.
        with self.writer.atomic():
            for context, evs in groups:
                if context is None:
                    self.writer.append(evs, sink)
                else:
                    context.run(self.writer.append, evs, sink)
        await _sink.flush(conn, sink)

    async def _seal_now(self, *, final: bool = False) -> list[Checkpoint]:
        async def seal(conn: asyncpg.Connection) -> list[Checkpoint]:
            # One sealer at a time (roots form one chain), and no append while it signs heads.
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _SEAL_LOCK)
            sink = await _sink.lock_all_heads(conn)
            signed = self.writer.seal(sink, final=final)
            await _sink.flush(conn, sink)
            return signed

        return await self._write(seal)

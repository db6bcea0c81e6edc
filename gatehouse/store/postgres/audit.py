"""The audit tables of the PostgreSQL driver: appends through the writer, reads for verify/export."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from gatehouse.audit.chain import Checkpoint, Entry, Root
from gatehouse.audit.events import AuditEvent
from gatehouse.store.base import AuditStore
from gatehouse.store.postgres import rows as pgrows
from gatehouse.store.postgres.connection import PostgresBase
from gatehouse.store.sqlite import rows

__all__ = ["PostgresAudit"]


class PostgresAudit(PostgresBase, AuditStore):
    async def append_audit(self, events: Sequence[AuditEvent]) -> None:
        async def append(conn: asyncpg.Connection) -> None:
            await self._append_audit(conn, events)

        await self._write(append)

    async def seal_audit(self) -> list[Checkpoint]:
        if self.writer.key is None or not self.writer.enabled:
            return []
        return await self._seal_now()

    async def audit_streams(self) -> list[str]:
        return [
            r[0] for r in await self._fetch("SELECT stream FROM audit_heads WHERE seq > 0 ORDER BY stream")
        ]

    async def audit_entries(
        self,
        stream: str,
        *,
        since_seq: int = 0,
        since_ts: float | None = None,
        limit: int | None = None,
    ) -> list[Entry]:
        args = pgrows.Args(stream, since_seq)
        sql = f"SELECT {rows.ENTRY_COLUMNS} FROM audit WHERE stream = $1 AND seq > $2"
        if since_ts is not None:
            sql += f" AND ts >= {args.add(float(since_ts))}"
        sql += " ORDER BY seq"
        if limit is not None:
            sql += f" LIMIT {args.add(limit)}"
        return [rows.entry(r) for r in await self._fetch(sql, *args.values)]

    async def audit_checkpoints(self, stream: str) -> list[Checkpoint]:
        found = await self._fetch(
            f"SELECT {rows.CHECKPOINT_COLUMNS} FROM audit_checkpoints WHERE stream = $1 ORDER BY id", stream
        )
        return [rows.checkpoint(r) for r in found]

    async def audit_roots(self) -> list[Root]:
        return [
            rows.root(r)
            for r in await self._fetch(f"SELECT {rows.ROOT_COLUMNS} FROM audit_roots ORDER BY id")
        ]

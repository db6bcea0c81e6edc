"""The audit tables of the SQLite driver: appends through the writer, reads for verify/export."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gatehouse.audit.chain import Checkpoint, Entry, Root
from gatehouse.audit.events import AuditEvent
from gatehouse.store.base import AuditStore
from gatehouse.store.sqlite import rows
from gatehouse.store.sqlite.connection import SQLiteBase

__all__ = ["SQLiteAudit"]


class SQLiteAudit(SQLiteBase, AuditStore):
    async def append_audit(self, events: Sequence[AuditEvent]) -> None:
        await self._write(lambda db: self._append_audit(db, events))

    async def seal_audit(self) -> list[Checkpoint]:
        if self.writer.key is None:
            return []
        return await self._write(self._seal)

    async def audit_streams(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT DISTINCT stream FROM audit ORDER BY stream")]

    async def audit_entries(
        self,
        stream: str,
        *,
        since_seq: int = 0,
        since_ts: float | None = None,
        limit: int | None = None,
    ) -> list[Entry]:
        sql = f"SELECT {rows.ENTRY_COLUMNS} FROM audit WHERE stream = ? AND seq > ?"
        args: list[Any] = [stream, since_seq]
        if since_ts is not None:
            sql += " AND ts >= ?"
            args.append(since_ts)
        sql += " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [rows.entry(r) for r in self.db.execute(sql, args).fetchall()]

    async def audit_checkpoints(self, stream: str) -> list[Checkpoint]:
        found = self.db.execute(
            f"SELECT {rows.CHECKPOINT_COLUMNS} FROM audit_checkpoints WHERE stream = ? ORDER BY id",
            (stream,),
        ).fetchall()
        return [rows.checkpoint(r) for r in found]

    async def audit_roots(self) -> list[Root]:
        found = self.db.execute(f"SELECT {rows.ROOT_COLUMNS} FROM audit_roots ORDER BY id").fetchall()
        return [rows.root(r) for r in found]

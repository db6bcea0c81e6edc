"""The decision log in the SQLite driver: records that move no job, and reads by job or page."""

from __future__ import annotations

import sqlite3
from typing import Any

from gatehouse.audit.events import decision_event
from gatehouse.domain.records import DecisionRecord
from gatehouse.store._cursor import decode_cursor, encode_cursor
from gatehouse.store.base import DecisionPage, DecisionStore
from gatehouse.store.sqlite import rows
from gatehouse.store.sqlite.connection import SQLiteBase

__all__ = ["SQLiteDecisions"]


class SQLiteDecisions(SQLiteBase, DecisionStore):
    async def add_decision(self, record: DecisionRecord) -> None:
        def add(db: sqlite3.Connection) -> None:
            rows.insert_record(db, record)
            self._append_audit(db, decision_event(record))

        await self._write(add)

    async def decisions(self, job_id: str, tenant: str | None = None) -> list[DecisionRecord]:
        sql, args = f"SELECT {rows.RECORD_COLUMNS} FROM decisions WHERE job_id = ?", [job_id]
        if tenant is not None:
            sql += " AND tenant = ?"
            args.append(tenant)
        return [rows.record(r) for r in self.db.execute(sql + " ORDER BY seq", args).fetchall()]

    async def decision(self, decision_id: str, tenant: str | None = None) -> DecisionRecord | None:
        sql, args = f"SELECT {rows.RECORD_COLUMNS} FROM decisions WHERE decision_id = ?", [decision_id]
        if tenant is not None:
            sql += " AND tenant = ?"
            args.append(tenant)
        row = self.db.execute(sql, args).fetchone()
        return rows.record(row) if row else None

    async def list_decisions(
        self,
        tenant: str | None,
        *,
        stage: str | None = None,
        result: str | None = None,
        rule_id: str | None = None,
        since: float | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> DecisionPage:
        where: list[str] = []
        args: list[Any] = []
        for column, value in (("tenant", tenant), ("stage", stage), ("result", result), ("rule_id", rule_id)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if since is not None:
            where.append("timestamp >= ?")
            args.append(since)
        if cursor:
            where.append("seq < ?")
            args.append(decode_cursor(cursor))
        sql = f"SELECT seq, {rows.RECORD_COLUMNS} FROM decisions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        found = self.db.execute(sql + " ORDER BY seq DESC LIMIT ?", [*args, limit + 1]).fetchall()
        records = [rows.record(r[1:]) for r in found[:limit]]
        next_cursor = encode_cursor(found[limit - 1][0]) if len(found) > limit else None
        return DecisionPage(decisions=records, next_cursor=next_cursor)

"""The decision log in the PostgreSQL driver: records that move no job, and reads by job or page."""

from __future__ import annotations

import asyncpg

from gatehouse.audit.events import decision_event
from gatehouse.domain.records import DecisionRecord
from gatehouse.store._cursor import decode_cursor, encode_cursor
from gatehouse.store.base import DecisionPage, DecisionStore
from gatehouse.store.postgres import rows as pgrows
from gatehouse.store.postgres.connection import PostgresBase
from gatehouse.store.sqlite import rows

__all__ = ["PostgresDecisions"]


class PostgresDecisions(PostgresBase, DecisionStore):
    async def add_decision(self, record: DecisionRecord) -> None:
        async def add(conn: asyncpg.Connection) -> None:
            await pgrows.insert_record(conn, record)
            await self._append_audit(conn, decision_event(record))

        await self._write(add)

    async def decisions(self, job_id: str, tenant: str | None = None) -> list[DecisionRecord]:
        args = pgrows.Args(job_id)
        sql = f"SELECT {rows.RECORD_COLUMNS} FROM decisions WHERE job_id = $1"
        if tenant is not None:
            sql += f" AND tenant = {args.add(tenant)}"
        return [rows.record(r) for r in await self._fetch(sql + " ORDER BY seq", *args.values)]

    async def decision(self, decision_id: str, tenant: str | None = None) -> DecisionRecord | None:
        args = pgrows.Args(decision_id)
        sql = f"SELECT {rows.RECORD_COLUMNS} FROM decisions WHERE decision_id = $1"
        if tenant is not None:
            sql += f" AND tenant = {args.add(tenant)}"
        row = await self._fetchrow(sql, *args.values)
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
        args = pgrows.Args()
        where: list[str] = []
        for column, value in (("tenant", tenant), ("stage", stage), ("result", result), ("rule_id", rule_id)):
            if value is not None:
                where.append(f"{column} = {args.add(value)}")
        if since is not None:
            where.append(f"timestamp >= {args.add(float(since))}")
        if cursor:
            where.append(f"seq < {args.add(decode_cursor(cursor))}")
        sql = f"SELECT seq, {rows.RECORD_COLUMNS} FROM decisions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        found = await self._fetch(sql + f" ORDER BY seq DESC LIMIT {args.add(limit + 1)}", *args.values)
        records = [rows.record(tuple(r)[1:]) for r in found[:limit]]
        next_cursor = encode_cursor(found[limit - 1][0]) if len(found) > limit else None
        return DecisionPage(decisions=records, next_cursor=next_cursor)

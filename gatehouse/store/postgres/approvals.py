"""Approvals in the PostgreSQL driver: reads, and the approval changes that travel with a change.

`approval_ops` runs inside the transaction of a job transition or a step settlement. Each change
is a compare-and-set whose expected status comes from the approval table (`domain.states`); a
nonce is consumed by `UPDATE ... WHERE consumed_at IS NULL`, which PostgreSQL re-checks on the
row's newest version after waiting for a concurrent writer: of two replicas racing with one
nonce, the second updates nothing.
"""

from __future__ import annotations

import asyncpg

from gatehouse.audit.events import AuditEvent, approval_consumed_event, approval_event, decision_event
from gatehouse.domain import states
from gatehouse.domain.approvals import STEP, Approval
from gatehouse.domain.changes import ApprovalUpdate
from gatehouse.domain.records import DecisionRecord
from gatehouse.errors import Conflict
from gatehouse.store._cursor import decode_cursor, encode_cursor
from gatehouse.store.base import ApprovalPage, ApprovalStore
from gatehouse.store.postgres import rows as pgrows
from gatehouse.store.postgres.connection import PostgresBase
from gatehouse.store.sqlite import rows

__all__ = ["PostgresApprovals", "approval_ops", "nonce_owner", "step_approval_events"]

_CONSUMED = states.approval_next(states.APPROVAL_APPROVED, "consume")
_BY_ID = f"SELECT {rows.APPROVAL_COLUMNS} FROM approvals WHERE id = $1"


async def approval_ops(
    conn: asyncpg.Connection,
    new: Approval | None,
    update: ApprovalUpdate | None,
    nonce: str | None,
    at: float,
) -> list[AuditEvent] | None:
    """Approval changes that travel with a change, and the audit events they make; None means
    "abort it all"."""
    events: list[AuditEvent] = []
    if nonce is not None:
        done = await conn.execute(
            "UPDATE approvals SET consumed_at = $1, status = $2 "
            "WHERE nonce = $3 AND consumed_at IS NULL AND status = $4",
            at,
            _CONSUMED,
            nonce,
            states.approval_source("consume"),
        )
        if done != "UPDATE 1":
            return None  # replayed: the nonce was used already
        events.append(approval_consumed_event(nonce))
    if update is not None:
        values = update.values()
        args = pgrows.Args()
        # The column names are the domain's field names (`ApprovalUpdate.values`), never the
        # caller's strings.
        sets = ", ".join(
            f"{k} = {args.add(rows.dumps(v) if k == 'token' and v is not None else v)}"
            for k, v in values.items()
        )
        sql = f"UPDATE approvals SET {sets} WHERE id = {args.add(update.approval_id)} AND status = "
        sql += args.add(update.expected)
        if await conn.execute(sql, *args.values) != "UPDATE 1":
            return None
    if new is not None:
        await pgrows.insert_approval(conn, new)
    return events


async def step_approval_events(
    conn: asyncpg.Connection, ids: list[str], new_id: str | None
) -> list[AuditEvent]:
    """The audit entries of the step approvals `ids` as the transaction left them."""
    events = []
    for approval_id in ids:
        row = await conn.fetchrow(_BY_ID, approval_id)
        if row is None:
            continue
        a = rows.approval(row)
        if a.kind == STEP:
            events.append(approval_event(a, "requested" if a.id == new_id else a.status))
    return events


async def nonce_owner(conn: asyncpg.Connection, nonce: str | None) -> list[str]:
    if nonce is None:
        return []
    found = await conn.fetchval("SELECT id FROM approvals WHERE nonce = $1", nonce)
    return [found] if found else []


class _Abort(Exception):
    pass


class PostgresApprovals(PostgresBase, ApprovalStore):
    async def update_approval(
        self, update: ApprovalUpdate, *, at: float, record: DecisionRecord | None = None
    ) -> Approval | None:
        async def apply(conn: asyncpg.Connection) -> Approval:
            try:
                async with conn.transaction():  # a savepoint: the unique violation is ours to answer
                    events = await approval_ops(conn, None, update, None, at)
            except asyncpg.UniqueViolationError:
                raise Conflict("approval nonce is stored already", code="duplicate_nonce") from None
            if events is None:
                raise _Abort
            if record is not None:
                await pgrows.insert_record(conn, record)
                events += decision_event(record)
            events += await step_approval_events(conn, [update.approval_id], None)
            await self._append_audit(conn, events)
            return rows.approval(await conn.fetchrow(_BY_ID, update.approval_id))

        try:
            return await self._write(apply)
        except _Abort:
            return None

    async def approval(self, approval_id: str) -> Approval | None:
        row = await self._fetchrow(_BY_ID, approval_id)
        return rows.approval(row) if row else None

    async def latest_approval(self, job_id: str) -> Approval | None:
        row = await self._fetchrow(
            f"SELECT {rows.APPROVAL_COLUMNS} FROM approvals WHERE job_id = $1 ORDER BY seq DESC LIMIT 1",
            job_id,
        )
        return rows.approval(row) if row else None

    async def list_approvals(
        self, tenant: str | None, status: str | None, limit: int = 200, cursor: str | None = None
    ) -> ApprovalPage:
        args = pgrows.Args()
        where = []
        if tenant is not None:
            where.append(f"tenant = {args.add(tenant)}")
        if status is not None:
            where.append(f"status = {args.add(status)}")
        if cursor:
            where.append(f"seq > {args.add(decode_cursor(cursor))}")
        sql = f"SELECT seq, {rows.APPROVAL_COLUMNS} FROM approvals"
        if where:
            sql += " WHERE " + " AND ".join(where)
        # One row past the page tells whether there is a next one.
        sql += f" ORDER BY seq LIMIT {args.add(limit + 1)}"
        found = await self._fetch(sql, *args.values)
        page = found[:limit]
        next_cursor = encode_cursor(page[-1][0]) if len(found) > limit else None
        return ApprovalPage(approvals=[rows.approval(tuple(r)[1:]) for r in page], next_cursor=next_cursor)

    async def overdue_approvals(self, at: float, limit: int = 100) -> list[Approval]:
        found = await self._fetch(
            f"SELECT {rows.APPROVAL_COLUMNS} FROM approvals WHERE status = $1 AND expires_at < $2 "
            "ORDER BY expires_at LIMIT $3",
            states.APPROVAL_PENDING,
            at,
            limit,
        )
        return [rows.approval(r) for r in found]

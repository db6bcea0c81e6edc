"""Approvals in the SQLite driver: reads, and the approval changes that travel with a transition.

`approval_ops` runs inside a job transition's transaction. Each change is a compare-and-set
whose expected status comes from the approval table (`domain.states`); the nonce of an approved
approval is consumed at most once ever, by the `UPDATE ... WHERE consumed_at IS NULL` below.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from gatehouse.audit.events import AuditEvent, approval_consumed_event, approval_event, decision_event
from gatehouse.domain import states
from gatehouse.domain.approvals import STEP, Approval
from gatehouse.domain.changes import ApprovalUpdate
from gatehouse.domain.records import DecisionRecord
from gatehouse.errors import Conflict
from gatehouse.store._cursor import decode_cursor, encode_cursor
from gatehouse.store.base import ApprovalPage, ApprovalStore
from gatehouse.store.sqlite import rows
from gatehouse.store.sqlite.connection import SQLiteBase

__all__ = ["SQLiteApprovals", "approval_ops", "step_approval_events"]

_CONSUMED = states.approval_next(states.APPROVAL_APPROVED, "consume")


def approval_ops(
    db: sqlite3.Connection,
    new: Approval | None,
    update: ApprovalUpdate | None,
    nonce: str | None,
    at: float,
) -> list[AuditEvent] | None:
    """Approval changes that travel with a job transition, and the audit events they make;
    None means "abort it all"."""
    events: list[AuditEvent] = []
    if nonce is not None:
        cur = db.execute(
            "UPDATE approvals SET consumed_at = ?, status = ? "
            "WHERE nonce = ? AND consumed_at IS NULL AND status = ?",
            (at, _CONSUMED, nonce, states.approval_source("consume")),
        )
        if cur.rowcount != 1:
            return None  # replayed: the nonce was used already
        events.append(approval_consumed_event(nonce))
    if update is not None:
        values = update.values()
        # The column names are the domain's field names (`ApprovalUpdate.values`), never
        # the caller's strings.
        sets = ", ".join(f"{k} = ?" for k in values)
        args: list[Any] = [rows.dumps(v) if k == "token" and v is not None else v for k, v in values.items()]
        cur = db.execute(
            f"UPDATE approvals SET {sets} WHERE id = ? AND status = ?",
            [*args, update.approval_id, update.expected],
        )
        if cur.rowcount != 1:
            return None
    if new is not None:
        rows.insert_approval(db, new)
    return events


def step_approval_events(db: sqlite3.Connection, ids: list[str], new_id: str | None) -> list[AuditEvent]:
    """The audit entries of the step approvals `ids` as the transaction left them."""
    events = []
    for approval_id in ids:
        row = db.execute(
            f"SELECT {rows.APPROVAL_COLUMNS} FROM approvals WHERE id = ?", (approval_id,)
        ).fetchone()
        if row is None:
            continue
        a = rows.approval(row)
        if a.kind == STEP:
            events.append(approval_event(a, "requested" if a.id == new_id else a.status))
    return events


def nonce_owner(db: sqlite3.Connection, nonce: str | None) -> list[str]:
    if nonce is None:
        return []
    row = db.execute("SELECT id FROM approvals WHERE nonce = ?", (nonce,)).fetchone()
    return [row[0]] if row else []


class _Abort(Exception):
    pass


class SQLiteApprovals(SQLiteBase, ApprovalStore):
    async def update_approval(
        self, update: ApprovalUpdate, *, at: float, record: DecisionRecord | None = None
    ) -> Approval | None:
        def apply(db: sqlite3.Connection) -> Approval:
            try:
                events = approval_ops(db, None, update, None, at)
            except sqlite3.IntegrityError:
                raise Conflict("approval nonce is stored already", code="duplicate_nonce") from None
            if events is None:
                raise _Abort
            if record is not None:
                rows.insert_record(db, record)
                events += decision_event(record)
            events += step_approval_events(db, [update.approval_id], None)
            self._append_audit(db, events)
            row = db.execute(
                f"SELECT {rows.APPROVAL_COLUMNS} FROM approvals WHERE id = ?", (update.approval_id,)
            ).fetchone()
            return rows.approval(row)

        try:
            return await self._write(apply)
        except _Abort:
            return None

    async def approval(self, approval_id: str) -> Approval | None:
        row = self.db.execute(
            f"SELECT {rows.APPROVAL_COLUMNS} FROM approvals WHERE id = ?", (approval_id,)
        ).fetchone()
        return rows.approval(row) if row else None

    async def latest_approval(self, job_id: str) -> Approval | None:
        row = self.db.execute(
            f"SELECT {rows.APPROVAL_COLUMNS} FROM approvals WHERE job_id = ? ORDER BY seq DESC LIMIT 1",
            (job_id,),
        ).fetchone()
        return rows.approval(row) if row else None

    async def list_approvals(
        self, tenant: str | None, status: str | None, limit: int = 200, cursor: str | None = None
    ) -> ApprovalPage:
        where: list[str] = []
        args: list[Any] = []
        if tenant is not None:
            where.append("tenant = ?")
            args.append(tenant)
        if status is not None:
            where.append("status = ?")
            args.append(status)
        if cursor:
            where.append("seq > ?")
            args.append(decode_cursor(cursor))
        sql = f"SELECT seq, {rows.APPROVAL_COLUMNS} FROM approvals"
        if where:
            sql += " WHERE " + " AND ".join(where)
        # One row past the page tells whether there is a next one.
        found = self.db.execute(sql + " ORDER BY seq LIMIT ?", [*args, limit + 1]).fetchall()
        page = found[:limit]
        next_cursor = encode_cursor(page[-1][0]) if len(found) > limit else None
        return ApprovalPage(approvals=[rows.approval(r[1:]) for r in page], next_cursor=next_cursor)

    async def overdue_approvals(self, at: float, limit: int = 100) -> list[Approval]:
        found = self.db.execute(
            f"SELECT {rows.APPROVAL_COLUMNS} FROM approvals WHERE status = ? AND expires_at < ? "
            "ORDER BY expires_at LIMIT ?",
            (states.APPROVAL_PENDING, at, limit),
        ).fetchall()
        return [rows.approval(r) for r in found]

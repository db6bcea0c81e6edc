"""Jobs in the SQLite driver: insert with the submit decision, transitions as compare-and-set,
leases, pages and the queue metrics.

A transition reads the job, asks the domain for the moved job (`changes.plan_job`: the state
table and the fields the event may change), and writes it with `WHERE status = <the state it
read>`: whoever moves the job first wins, the other gets None. The approval changes, the decision
record and the audit entries go in the same savepoint; if an approval change is refused
(`_Abort`), the savepoint is rolled back and the job stays where it was.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from gatehouse.audit.events import decision_event, job_submitted_event, state_event
from gatehouse.domain import states
from gatehouse.domain.approvals import Approval
from gatehouse.domain.changes import NO_CHANGES, ApprovalUpdate, JobChanges, plan_job
from gatehouse.domain.jobs import Job
from gatehouse.domain.records import DecisionRecord
from gatehouse.errors import Conflict
from gatehouse.store._cursor import decode_cursor, encode_cursor
from gatehouse.store.base import JobPage, JobStore
from gatehouse.store.sqlite import rows
from gatehouse.store.sqlite.approvals import approval_ops
from gatehouse.store.sqlite.connection import SQLiteBase

__all__ = ["SQLiteJobs"]


class _Abort(Exception):
    """Raised inside a transaction to roll it back and answer "did not happen"."""


class SQLiteJobs(SQLiteBase, JobStore):
    async def insert_job(self, job: Job, record: DecisionRecord, approval: Approval | None = None) -> Job:
        try:
            return await self._write(lambda db: self._insert_job(db, job, record, approval))
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"job conflicts with a stored one: {exc}", code="duplicate_job") from None

    def _insert_job(
        self, db: sqlite3.Connection, job: Job, record: DecisionRecord, approval: Approval | None
    ) -> Job:
        seq = rows.insert_job(db, job)
        rows.insert_record(db, record)
        if approval is not None:
            rows.insert_approval(db, approval)
        self._append_audit(db, [job_submitted_event(job), *decision_event(record)])
        return job.evolve(seq=seq)

    async def get_job(self, job_id: str, tenant: str | None = None) -> Job | None:
        if tenant is None:
            found = self.db.execute(f"SELECT {rows.JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        else:
            found = self.db.execute(
                f"SELECT {rows.JOB_COLUMNS} FROM jobs WHERE id = ? AND tenant = ?", (job_id, tenant)
            )
        row = found.fetchone()
        return rows.job(row) if row else None

    async def job_by_idempotency_key(self, identity_id: str, key: str) -> Job | None:
        row = self.db.execute(
            f"SELECT {rows.JOB_COLUMNS} FROM jobs WHERE identity_id = ? AND idempotency_key = ?",
            (identity_id, key),
        ).fetchone()
        return rows.job(row) if row else None

    async def list_jobs(
        self,
        tenant: str | None,
        *,
        status: str | None = None,
        topic: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> JobPage:
        where: list[str] = []
        args: list[Any] = []
        if tenant is not None:
            where.append("tenant = ?")
            args.append(tenant)
        if status:
            where.append("status = ?")
            args.append(status)
        if topic:
            where.append("topic = ?")
            args.append(topic)
        if cursor:
            where.append("seq < ?")
            args.append(decode_cursor(cursor))
        sql = f"SELECT {rows.JOB_COLUMNS} FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq DESC LIMIT ?"
        args.append(limit + 1)
        found = self.db.execute(sql, args).fetchall()
        jobs = [rows.job(r) for r in found[:limit]]
        next_cursor = encode_cursor(jobs[-1].seq) if len(found) > limit else None
        return JobPage(jobs=jobs, next_cursor=next_cursor)

    async def transition(
        self,
        job_id: str,
        event: str,
        *,
        at: float,
        record: DecisionRecord | None = None,
        changes: JobChanges = NO_CHANGES,
        new_approval: Approval | None = None,
        approval: ApprovalUpdate | None = None,
        consume_nonce: str | None = None,
    ) -> Job | None:
        allowed = states.sources(event)
        if not allowed:
            raise ValueError(f"unknown event `{event}`")

        def move(db: sqlite3.Connection) -> Job | None:
            row = db.execute(f"SELECT {rows.JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return None
            job = rows.job(row)
            if job.status not in allowed:
                return None
            moved, values = plan_job(job, event, changes, at)
            sets = ["status = ?", "updated_at = ?"]
            args: list[Any] = [moved.status, at]
            for key, value in values.items():
                sets.append(f"{key} = ?")  # a field name the state table allowed for `event`
                args.append(rows.dumps(value) if key in rows.JSON_FIELDS and value is not None else value)
            args += [job_id, job.status]
            cur = db.execute(f"UPDATE jobs SET {', '.join(sets)} WHERE id = ? AND status = ?", args)
            if cur.rowcount != 1:
                return None
            events = approval_ops(db, new_approval, approval, consume_nonce, at)
            if events is None:
                raise _Abort  # roll the job transition back with it
            if record is not None:
                rows.insert_record(db, record)
                events += decision_event(record)
            events.append(state_event(job, job.status, moved.status, event, values, row=moved))
            self._append_audit(db, events)
            return moved

        try:
            return await self._write(move)
        except _Abort:
            return None

    async def queued_jobs(
        self, prefixes: Sequence[str], limit: int, *, tenant: str | None = None
    ) -> list[Job]:
        where = "status = ?"
        args: list[Any] = [states.QUEUED]
        if tenant is not None:
            where += " AND tenant = ?"
            args.append(tenant)
        if prefixes and "" not in prefixes:
            # Topic prefixes become index range scans; the caller filters by the full glob.
            where += " AND (" + " OR ".join("(topic >= ? AND topic < ?)" for _ in prefixes) + ")"
            for p in prefixes:
                args += [p, p + "\uffff"]
        found = self.db.execute(
            f"SELECT {rows.JOB_COLUMNS} FROM jobs WHERE {where} ORDER BY seq LIMIT ?", [*args, limit]
        ).fetchall()
        return [rows.job(r) for r in found]

    async def extend_lease(self, job_id: str, owner: str, expires_at: float, *, at: float) -> Job | None:
        def extend(db: sqlite3.Connection) -> int:
            cur = db.execute(
                "UPDATE jobs SET lease_expires_at = ?, updated_at = ? WHERE id = ? "
                "AND lease_owner = ? AND status = ?",
                (expires_at, at, job_id, owner, states.RUNNING),
            )
            return cur.rowcount

        if await self._write(extend) != 1:
            return None
        return await self.get_job(job_id)

    async def expired_leases(self, at: float, limit: int = 100) -> list[Job]:
        found = self.db.execute(
            f"SELECT {rows.JOB_COLUMNS} FROM jobs WHERE lease_expires_at IS NOT NULL "
            "AND lease_expires_at < ? AND status IN (?, ?) LIMIT ?",
            (at, states.DISPATCHED, states.RUNNING, limit),
        ).fetchall()
        return [rows.job(r) for r in found]

    async def count_by_status(self, tenant: str | None = None) -> dict[str, int]:
        args: tuple[str, ...] = ()
        if tenant is None:
            sql = "SELECT status, COUNT(*) FROM jobs GROUP BY status"
        else:
            sql, args = "SELECT status, COUNT(*) FROM jobs WHERE tenant = ? GROUP BY status", (tenant,)
        found = await self._in_background(lambda db: db.execute(sql, args).fetchall())
        return {status: n for status, n in found}

    async def oldest_in_state(self, status: str) -> float | None:
        sql = "SELECT MIN(updated_at) FROM jobs WHERE status = ?"
        row = await self._in_background(lambda db: db.execute(sql, (status,)).fetchone())
        return row[0] if row else None

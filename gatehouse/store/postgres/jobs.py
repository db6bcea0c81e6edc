"""Jobs in the PostgreSQL driver: insert with the submit decision, transitions under a row lock,
leases, pages and the queue metrics.

A transition locks the job row (`SELECT ... FOR UPDATE`), asks the domain for the moved job
(`changes.plan_job`: the state table and the fields the event may change) and writes it with
`WHERE status = <the state it read>`. The dispatch gate's events lock with `SKIP LOCKED`: when
two schedulers reach for the same queued job, the one that finds it locked moves on at once
instead of waiting to lose the compare-and-set. The approval changes, the decision record and the
audit entries go in the same transaction; if an approval change is refused, all of it is rolled
back and the job stays where it was.
"""

from __future__ import annotations

import contextvars
from collections.abc import Sequence
from functools import cached_property
from typing import NamedTuple

import asyncpg

from gatehouse.audit.events import decision_event, job_submitted_event, state_event
from gatehouse.domain import states
from gatehouse.domain.approvals import Approval
from gatehouse.domain.changes import NO_CHANGES, ApprovalUpdate, JobChanges, plan_job
from gatehouse.domain.jobs import Job
from gatehouse.domain.records import DecisionRecord
from gatehouse.errors import Conflict
from gatehouse.store._cursor import decode_cursor, encode_cursor
from gatehouse.store.base import JobPage, JobStore
from gatehouse.store.postgres import rows as pgrows
from gatehouse.store.postgres.approvals import approval_ops
from gatehouse.store.postgres.connection import PostgresBase
from gatehouse.store.postgres.group import GroupCommit
from gatehouse.store.sqlite import rows

__all__ = ["PostgresJobs"]

_SELECT = f"SELECT {rows.JOB_COLUMNS} FROM jobs"


class _Abort(Exception):
    """Raised inside a transaction to roll it back and answer "did not happen"."""


class _NewJob(NamedTuple):
    job: Job
    record: DecisionRecord
    approval: Approval | None
    context: contextvars.Context  # the submitting request's (its audit entries' actor, request id)


class PostgresJobs(PostgresBase, JobStore):
    @cached_property
    def _new_jobs(self) -> GroupCommit[_NewJob, Job]:
        # A duplicate key fails the batch; each job then goes alone, for its own answer.
        return GroupCommit(self._insert_jobs, alone=(asyncpg.UniqueViolationError,))

    async def insert_job(self, job: Job, record: DecisionRecord, approval: Approval | None = None) -> Job:
        try:
            return await self._new_jobs(_NewJob(job, record, approval, contextvars.copy_context()))
        except asyncpg.UniqueViolationError as exc:
            # The unique indexes hold across replicas: one id, one (identity, idempotency key).
            raise Conflict(
                f"job conflicts with a stored one: {exc.constraint_name}", code="duplicate_job"
            ) from None

    async def _insert_jobs(self, new: list[_NewJob]) -> list[Job]:
        """One transaction for the jobs submitted together (`group`): their rows, their submit
        decisions and approvals, their audit entries."""

        async def insert(conn: asyncpg.Connection) -> list[Job]:
            seqs = await pgrows.insert_jobs(conn, [n.job for n in new])
            await pgrows.insert_records(conn, [n.record for n in new])
            approvals = [n.approval for n in new if n.approval is not None]
            if approvals:
                await pgrows.insert_approvals(conn, approvals)
            await self._append_audit_groups(
                conn, [(n.context, [job_submitted_event(n.job), *decision_event(n.record)]) for n in new]
            )
            return [n.job.evolve(seq=seqs[n.job.id]) for n in new]

        return await self._write(insert)

    async def get_job(self, job_id: str, tenant: str | None = None) -> Job | None:
        if tenant is None:
            row = await self._fetchrow(f"{_SELECT} WHERE id = $1", job_id)
        else:
            row = await self._fetchrow(f"{_SELECT} WHERE id = $1 AND tenant = $2", job_id, tenant)
        return rows.job(row) if row else None

    async def job_by_idempotency_key(self, identity_id: str, key: str) -> Job | None:
        row = await self._fetchrow(
            f"{_SELECT} WHERE identity_id = $1 AND idempotency_key = $2", identity_id, key
        )
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
        args = pgrows.Args()
        where: list[str] = []
        if tenant is not None:
            where.append(f"tenant = {args.add(tenant)}")
        if status:
            where.append(f"status = {args.add(status)}")
        if topic:
            where.append(f"topic = {args.add(topic)}")
        if cursor:
            where.append(f"seq < {args.add(decode_cursor(cursor))}")
        sql = _SELECT
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY seq DESC LIMIT {args.add(limit + 1)}"
        found = await self._fetch(sql, *args.values)
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
        lock = "FOR UPDATE SKIP LOCKED" if event.startswith("dispatch_") else "FOR UPDATE"

        async def move(conn: asyncpg.Connection) -> Job | None:
            row = await conn.fetchrow(f"{_SELECT} WHERE id = $1 {lock}", job_id)
            if row is None:
                return None
            job = rows.job(row)
            if job.status not in allowed:
                return None
            moved, values = plan_job(job, event, changes, at)
            args = pgrows.Args(moved.status, at)
            sets = ["status = $1", "updated_at = $2"]
            for key, value in values.items():
                # a field name the state table allowed for `event`
                stored = rows.dumps(value) if key in rows.JSON_FIELDS and value is not None else value
                sets.append(f"{key} = {args.add(stored)}")
            sql = f"UPDATE jobs SET {', '.join(sets)} WHERE id = {args.add(job_id)} AND status = "
            if await conn.execute(sql + args.add(job.status), *args.values) != "UPDATE 1":
                return None
            events = await approval_ops(conn, new_approval, approval, consume_nonce, at)
            if events is None:
                raise _Abort  # roll the job transition back with it
            if record is not None:
                await pgrows.insert_record(conn, record)
                events += decision_event(record)
            events.append(state_event(job, job.status, moved.status, event, values, row=moved))
            await self._append_audit(conn, events)
            return moved

        try:
            return await self._write(move)
        except _Abort:
            return None

    async def queued_jobs(
        self, prefixes: Sequence[str], limit: int, *, tenant: str | None = None
    ) -> list[Job]:
        args = pgrows.Args(states.QUEUED)
        where, order = "status = $1", "seq"
        if tenant is not None:
            where += f" AND tenant = {args.add(tenant)}"
        if prefixes and "" not in prefixes:
            # Topic prefixes become ranges of the `jobs_queue` index (byte order); the caller
            # filters by the full glob.
            ranges = [
                f'(topic COLLATE "C" >= {args.add(p)} AND topic COLLATE "C" < {args.add(p + chr(0x10FFFF))})'
                for p in prefixes
            ]
            where += f" AND ({' OR '.join(ranges)})"
            # `seq + 0`: ordered by an expression no index holds, so the planner reads the topic
            # ranges and sorts them. Ordered by `seq`, a (generic) plan walked `jobs_status` in
            # seq order through every queued job of other topics, hoping to meet the limit soon.
            order = "seq + 0"
        sql = f"{_SELECT} WHERE {where} ORDER BY {order} LIMIT {args.add(limit)}"
        return [rows.job(r) for r in await self._fetch(sql, *args.values)]

    async def extend_lease(self, job_id: str, owner: str, expires_at: float, *, at: float) -> Job | None:
        async def extend(conn: asyncpg.Connection) -> asyncpg.Record | None:
            return await conn.fetchrow(
                "UPDATE jobs SET lease_expires_at = $1, updated_at = $2 WHERE id = $3 "
                f"AND lease_owner = $4 AND status = $5 RETURNING {rows.JOB_COLUMNS}",
                expires_at,
                at,
                job_id,
                owner,
                states.RUNNING,
            )

        row = await self._write(extend)
        return rows.job(row) if row else None

    async def expired_leases(self, at: float, limit: int = 100) -> list[Job]:
        found = await self._fetch(
            f"{_SELECT} WHERE lease_expires_at IS NOT NULL AND lease_expires_at < $1 "
            "AND status IN ($2, $3) LIMIT $4",
            at,
            states.DISPATCHED,
            states.RUNNING,
            limit,
        )
        return [rows.job(r) for r in found]

    async def count_by_status(self, tenant: str | None = None) -> dict[str, int]:
        if tenant is None:
            found = await self._fetch("SELECT status, COUNT(*) FROM jobs GROUP BY status")
        else:
            found = await self._fetch(
                "SELECT status, COUNT(*) FROM jobs WHERE tenant = $1 GROUP BY status", tenant
            )
        return {status: n for status, n in found}

    async def oldest_in_state(self, status: str) -> float | None:
        row = await self._fetchrow("SELECT MIN(updated_at) FROM jobs WHERE status = $1", status)
        return row[0] if row else None

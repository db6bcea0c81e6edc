"""Row writing for the PostgreSQL driver. Rows are read by the SQLite driver's readers
(`store.sqlite.rows`): the columns are the same, in the same order, with JSON as text."""

from __future__ import annotations

from typing import Any

import asyncpg

from gatehouse.domain.approvals import Approval
from gatehouse.domain.jobs import Job
from gatehouse.domain.records import DecisionRecord
from gatehouse.store.sqlite.rows import APPROVAL_COLUMNS, JOB_COLUMNS, RECORD_COLUMNS, approval_values, dumps

__all__ = ["Args", "insert_approval", "insert_job", "insert_record", "placeholders"]


def placeholders(n: int, start: int = 1) -> str:
    return ",".join(f"${i}" for i in range(start, start + n))


class Args:
    """Positional parameters of a statement built piece by piece: `add` answers `$n`."""

    def __init__(self, *values: Any) -> None:
        self.values: list[Any] = list(values)

    def add(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


_JOB_INSERT_COLUMNS = JOB_COLUMNS.split(", ", 1)[1]  # all but seq, which the database assigns
_INSERT_JOB = f"INSERT INTO jobs ({_JOB_INSERT_COLUMNS}) VALUES ({placeholders(22)}) RETURNING seq"
_INSERT_RECORD = f"INSERT INTO decisions ({RECORD_COLUMNS}) VALUES ({placeholders(15)})"
_INSERT_APPROVAL = f"INSERT INTO approvals ({APPROVAL_COLUMNS}) VALUES ({placeholders(23)})"


async def insert_job(conn: asyncpg.Connection, job: Job) -> int:
    """Insert `job`; its `seq` (orders pages)."""
    seq = await conn.fetchval(
        _INSERT_JOB,
        job.id,
        job.tenant,
        job.identity_id,
        job.topic,
        job.prompt,
        dumps(job.labels),
        dumps(job.meta),
        dumps(job.attachments),
        job.status,
        job.job_hash,
        job.idempotency_key,
        job.policy_snapshot,
        dumps(list(job.requester_roles)),
        dumps(job.derived),
        dumps(job.result) if job.result is not None else None,
        job.error,
        job.lease_owner,
        job.lease_expires_at,
        job.attempts,
        job.remediated_from,
        job.created_at,
        job.updated_at,
    )
    return int(seq)


def record_values(r: DecisionRecord) -> tuple[Any, ...]:
    return (
        r.decision_id,
        r.job_id,
        r.tenant,
        r.timestamp,
        r.result,
        r.rule_id,
        r.reason,
        r.stage,
        r.policy_snapshot,
        r.job_hash,
        dumps(r.remediations),
        int(r.cached),
        int(r.fail_mode_applied),
        dumps(r.extra),
        dumps(r.request) if r.request is not None else None,
    )


async def insert_record(conn: asyncpg.Connection, r: DecisionRecord) -> None:
    await conn.execute(_INSERT_RECORD, *record_values(r))


async def insert_approval(conn: asyncpg.Connection, a: Approval) -> None:
    await conn.execute(_INSERT_APPROVAL, *approval_values(a))

"""Row writing for the PostgreSQL driver. Rows are read by the SQLite driver's readers
(`store.sqlite.rows`): the columns are the same, in the same order, with JSON as text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from gatehouse.domain.approvals import Approval
from gatehouse.domain.jobs import Job
from gatehouse.domain.records import DecisionRecord
from gatehouse.store.sqlite.rows import APPROVAL_COLUMNS, JOB_COLUMNS, RECORD_COLUMNS, approval_values, dumps

__all__ = [
    "Args",
    "insert_approval",
    "insert_approvals",
    "insert_jobs",
    "insert_record",
    "insert_records",
    "placeholders",
]


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
# Many jobs in one statement: one array per column (`unnest` zips them back into rows).
_JOB_TYPES = ["text"] * 17 + ["float8", "int", "text", "float8", "float8"]
_INSERT_JOBS = (
    f"INSERT INTO jobs ({_JOB_INSERT_COLUMNS}) SELECT * FROM unnest("
    + ", ".join(f"${i}::{t}[]" for i, t in enumerate(_JOB_TYPES, 1))
    + ") RETURNING id, seq"
)
_INSERT_RECORD = f"INSERT INTO decisions ({RECORD_COLUMNS}) VALUES ({placeholders(15)})"
_INSERT_APPROVAL = f"INSERT INTO approvals ({APPROVAL_COLUMNS}) VALUES ({placeholders(23)})"


async def insert_jobs(conn: asyncpg.Connection, jobs: Sequence[Job]) -> dict[str, int]:
    """Insert `jobs` in one statement; each one's `seq` by id."""
    columns = [list(c) for c in zip(*map(job_values, jobs), strict=True)]
    return {r[0]: r[1] for r in await conn.fetch(_INSERT_JOBS, *columns)}


def job_values(job: Job) -> tuple[Any, ...]:
    return (
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


async def insert_records(conn: asyncpg.Connection, records: Sequence[DecisionRecord]) -> None:
    # executemany sends every row before it waits: one round trip.
    await conn.executemany(_INSERT_RECORD, [record_values(r) for r in records])


async def insert_approval(conn: asyncpg.Connection, a: Approval) -> None:
    await conn.execute(_INSERT_APPROVAL, *approval_values(a))


async def insert_approvals(conn: asyncpg.Connection, approvals: Sequence[Approval]) -> None:
    await conn.executemany(_INSERT_APPROVAL, [approval_values(a) for a in approvals])

"""Row mapping for the SQLite driver: values to columns and back, in one place.

Each table has its column list (`*_COLUMNS`, the order of its SELECTs and INSERTs), a reader that
turns a row tuple into a domain value, and an inserter. JSON columns are written with orjson and
read back tolerantly: rows written before orjson may hold NaN or Infinity, which only the
standard library parses.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import orjson

from gatehouse.audit.chain import Checkpoint, Entry, Root
from gatehouse.domain.approvals import Approval
from gatehouse.domain.containment import Containment
from gatehouse.domain.identity import Identity
from gatehouse.domain.jobs import Job
from gatehouse.domain.records import DecisionRecord

__all__ = [
    "APPROVAL_COLUMNS",
    "CHECKPOINT_COLUMNS",
    "CONTAINMENT_COLUMNS",
    "ENTRY_COLUMNS",
    "IDENTITY_COLUMNS",
    "JOB_COLUMNS",
    "JSON_FIELDS",
    "RECORD_COLUMNS",
    "ROOT_COLUMNS",
    "approval",
    "checkpoint",
    "containment",
    "dumps",
    "entry",
    "identity",
    "insert_approval",
    "insert_job",
    "insert_record",
    "job",
    "loads",
    "record",
    "root",
]

JOB_COLUMNS = (
    "seq, id, tenant, identity_id, topic, prompt, labels, meta, attachments, status, job_hash, "
    "idempotency_key, policy_snapshot, requester_roles, derived, result, error, lease_owner, "
    "lease_expires_at, attempts, remediated_from, created_at, updated_at"
)
# Job fields stored as JSON text (a transition's changes are encoded by the same rule).
JSON_FIELDS = frozenset({"labels", "meta", "attachments", "derived", "result", "requester_roles"})


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def loads(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        # Rows written before orjson (json.dumps allowed NaN and Infinity): still readable.
        return json.loads(text)


def job(row: sqlite3.Row | tuple[Any, ...]) -> Job:
    (
        seq,
        id_,
        tenant,
        identity_id,
        topic,
        prompt,
        labels,
        meta,
        attachments,
        status,
        jhash,
        idem,
        snapshot,
        roles,
        derived,
        result,
        error,
        lease_owner,
        lease_expires_at,
        attempts,
        remediated_from,
        created_at,
        updated_at,
    ) = row
    return Job(
        id=id_,
        tenant=tenant,
        identity_id=identity_id,
        topic=topic,
        prompt=prompt,
        labels=loads(labels),
        meta=loads(meta),
        attachments=loads(attachments),
        status=status,
        job_hash=jhash,
        idempotency_key=idem,
        policy_snapshot=snapshot,
        requester_roles=tuple(loads(roles)),
        derived=loads(derived),
        result=loads(result) if result is not None else None,
        error=error,
        lease_owner=lease_owner,
        lease_expires_at=lease_expires_at,
        attempts=attempts,
        remediated_from=remediated_from,
        created_at=created_at,
        updated_at=updated_at,
        seq=seq,
    )


def identity(row: tuple[Any, ...]) -> Identity:
    id_, name, tenant, roles, topics, caps, created_at, created_by, revoked_at, rate_limit, adapters = row
    return Identity(
        id=id_,
        name=name,
        tenant=tenant,
        roles=tuple(loads(roles)),
        topics=tuple(loads(topics)),
        capabilities=tuple(loads(caps)),
        created_at=created_at,
        created_by=created_by,
        revoked_at=revoked_at,
        rate_limit=rate_limit,
        adapters=tuple(loads(adapters or "[]")),
    )


IDENTITY_COLUMNS = (
    "id, name, tenant, roles, topics, capabilities, created_at, created_by, revoked_at, rate_limit, adapters"
)


def record(row: tuple[Any, ...]) -> DecisionRecord:
    (
        decision_id,
        job_id,
        tenant,
        ts,
        result,
        rule_id,
        reason,
        stage,
        snapshot,
        jhash,
        remediations,
        cached,
        fail_mode_applied,
        extra,
        request,
    ) = row
    return DecisionRecord(
        decision_id=decision_id,
        job_id=job_id,
        tenant=tenant,
        timestamp=ts,
        result=result,
        rule_id=rule_id,
        reason=reason,
        stage=stage,
        policy_snapshot=snapshot,
        job_hash=jhash,
        remediations=loads(remediations),
        cached=bool(cached),
        fail_mode_applied=bool(fail_mode_applied),
        extra=loads(extra),
        request=loads(request) if request is not None else None,
    )


RECORD_COLUMNS = (
    "decision_id, job_id, tenant, timestamp, result, rule_id, reason, stage, policy_snapshot, "
    "job_hash, remediations, cached, fail_mode_applied, extra, request"
)


CONTAINMENT_COLUMNS = "id, kind, target, reason, created_at, created_by, lifted_at, lifted_by"

APPROVAL_COLUMNS = (
    "id, job_id, tenant, job_hash, policy_snapshot, rule_id, reason, status, requested_at, "
    "expires_at, ttl, requested_by, approver_id, decided_at, comment, token, nonce, consumed_at, "
    "kind, session_id, step_id, target, step_hash"
)


def approval(row: tuple[Any, ...]) -> Approval:
    values = list(row)
    values[15] = loads(values[15]) if values[15] else None
    names = [c.strip() for c in APPROVAL_COLUMNS.split(",")]
    return Approval(**dict(zip(names, values, strict=True)))


def approval_values(a: Approval) -> tuple[Any, ...]:
    """An approval's columns in `APPROVAL_COLUMNS` order (both SQL drivers insert these)."""
    return (
        a.id,
        a.job_id,
        a.tenant,
        a.job_hash,
        a.policy_snapshot,
        a.rule_id,
        a.reason,
        a.status,
        a.requested_at,
        a.expires_at,
        a.ttl,
        a.requested_by,
        a.approver_id,
        a.decided_at,
        a.comment,
        dumps(a.token) if a.token else None,
        a.nonce,
        a.consumed_at,
        a.kind,
        a.session_id,
        a.step_id,
        a.target,
        a.step_hash,
    )


def insert_approval(db: sqlite3.Connection, a: Approval) -> None:
    marks = ",".join("?" * len(APPROVAL_COLUMNS.split(",")))
    db.execute(f"INSERT INTO approvals ({APPROVAL_COLUMNS}) VALUES ({marks})", approval_values(a))


def insert_record(db: sqlite3.Connection, r: DecisionRecord) -> None:
    db.execute(
        f"INSERT INTO decisions ({RECORD_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
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
        ),
    )


ENTRY_COLUMNS = "stream, seq, ts, type, actor, request_id, data, prev_hash, hash"


def entry(r: tuple[Any, ...]) -> Entry:
    return Entry(
        stream=r[0],
        seq=r[1],
        ts=r[2],
        type=r[3],
        actor=r[4],
        request_id=r[5],
        data=loads(r[6]),
        prev_hash=r[7],
        hash=r[8],
    )


CHECKPOINT_COLUMNS = "stream, seq, hash, time, key_id, sig, prev"
ROOT_COLUMNS = "seq, time, prev, heads, key_id, sig, final"


def checkpoint(r: tuple[Any, ...]) -> Checkpoint:
    return Checkpoint(*r)


def root(r: tuple[Any, ...]) -> Root:
    return Root(seq=r[0], time=r[1], prev=r[2], heads=loads(r[3]), key_id=r[4], sig=r[5], final=bool(r[6]))


def containment(r: tuple[Any, ...]) -> Containment:
    return Containment(*r)


def insert_job(db: sqlite3.Connection, job: Job) -> int:
    """Insert `job`; its `seq` (the row id that orders pages)."""
    cur = db.execute(
        f"INSERT INTO jobs ({JOB_COLUMNS}) VALUES (NULL,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
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
        ),
    )
    return cur.lastrowid or 0

"""Binding job and decision rows to the audit log: a digest of each row in its audit entry.

The chain proves the log was not changed; these digests prove the tables it describes were not
either. Every entry written with a change of a job (`job.submitted`, `job.state`) carries
`row_sha256`, the digest of the job row as that change left it; every `decision` entry carries
the digest of its decision record. `audit verify --data-dir` recomputes them from the rows: a
deny edited into an allow, a job whose status, result or prompt was rewritten, a row deleted
or added behind the log's back, all show.

What a job digest leaves out, and why: `seq` (the storage row id, assigned by the database) and
the lease clock (`lease_expires_at`, `updated_at`), which a worker's heartbeat moves without an
audit entry. Everything a decision depends on or a reader is shown is in.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable
from typing import Any

from gatehouse.audit.chain import Entry, StreamReport
from gatehouse.crypto import canonical
from gatehouse.domain.jobs import Job
from gatehouse.domain.records import DecisionRecord

__all__ = ["ROWS", "decision_digest", "job_digest", "verify_rows"]

ROWS = "(rows)"
_JOB_UNBOUND = frozenset({"seq", "lease_expires_at", "updated_at"})


# The fields each digest covers, read once: `dataclasses.fields` per call showed up on the
# submit path (two digests a submit).
_JOB_BOUND = tuple(f.name for f in dataclasses.fields(Job) if f.name not in _JOB_UNBOUND)
_DECISION_BOUND = tuple(f.name for f in dataclasses.fields(DecisionRecord))


def job_digest(job: Job) -> str:
    body = {name: getattr(job, name) for name in _JOB_BOUND}
    return hashlib.sha256(canonical(body)).hexdigest()


def decision_digest(record: DecisionRecord) -> str:
    body = {name: getattr(record, name) for name in _DECISION_BOUND}
    return hashlib.sha256(canonical(body)).hexdigest()


def verify_rows(
    entries: Iterable[Entry], jobs: Iterable[Job], decisions: Iterable[DecisionRecord]
) -> StreamReport:
    """Compare the rows with the digests the log holds for them (the newest one per job)."""
    report = StreamReport(stream=ROWS)
    job_digests: dict[str, str | None] = {}
    decision_digests: dict[str, str | None] = {}
    for e in entries:
        data: Any = e.data
        if e.type in ("job.submitted", "job.state") and data.get("job_id"):
            # Entries written before rows were bound carry no digest: the job is then unchecked.
            job_digests[data["job_id"]] = data.get("row_sha256")
        elif e.type == "decision" and data.get("decision_id"):
            decision_digests[data["decision_id"]] = data.get("row_sha256")
    seen_jobs: set[str] = set()
    for job in jobs:
        report.entries += 1
        seen_jobs.add(job.id)
        if job.id not in job_digests:
            report.fail(None, f"job `{job.id}` has no audit entry (row added behind the log)")
            continue
        expected = job_digests[job.id]
        if expected is not None and expected != job_digest(job):
            report.fail(None, f"job `{job.id}` differs from its audit entry (row modified)")
    for job_id in job_digests.keys() - seen_jobs:
        report.fail(None, f"job `{job_id}` is in the audit log but its row is gone (row deleted)")
    seen_decisions: set[str] = set()
    for record in decisions:
        report.entries += 1
        seen_decisions.add(record.decision_id)
        if record.decision_id not in decision_digests:
            report.fail(
                None, f"decision `{record.decision_id}` has no audit entry (row added behind the log)"
            )
            continue
        expected = decision_digests[record.decision_id]
        if expected is not None and expected != decision_digest(record):
            report.fail(None, f"decision `{record.decision_id}` differs from its audit entry (row modified)")
    for decision_id in decision_digests.keys() - seen_decisions:
        report.fail(None, f"decision `{decision_id}` is in the audit log but its row is gone (row deleted)")
    return report

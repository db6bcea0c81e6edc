"""Jobs as values: the job, its hash, its policy context and the request a record keeps."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from gatehouse.crypto import canonical
from gatehouse.domain.ids import rfc3339
from gatehouse.ingress.canon import canon_labels

__all__ = ["Job", "job_context", "job_hash", "request_of"]


def job_hash(
    *,
    tenant: str,
    topic: str,
    prompt: str,
    labels: Mapping[str, str],
    meta: Mapping[str, Any],
    attachments: Sequence[Mapping[str, Any]],
) -> str:
    """sha256 over everything that defines what the job does: any edit makes a new job."""
    body = {
        "tenant": tenant,
        "topic": topic,
        "prompt": prompt,
        "labels": dict(labels),
        "capability": meta.get("capability"),
        "risk_tags": sorted(meta.get("risk_tags") or []),
        "attachments": [
            {
                "name": a.get("name"),
                "sha256": hashlib.sha256(str(a.get("content_base64", "")).encode()).hexdigest(),
            }
            for a in attachments
        ],
    }
    return hashlib.sha256(canonical(body)).hexdigest()


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    tenant: str
    identity_id: str
    topic: str
    prompt: str
    labels: dict[str, str]
    meta: dict[str, Any]
    status: str
    job_hash: str
    created_at: float
    updated_at: float
    attachments: list[dict[str, Any]] = field(default_factory=list)
    idempotency_key: str | None = None
    policy_snapshot: str | None = None
    requester_roles: tuple[str, ...] = ()
    derived: dict[str, Any] = field(default_factory=dict)
    result: Any = None
    error: str | None = None
    lease_owner: str | None = None
    lease_expires_at: float | None = None
    attempts: int = 0
    remediated_from: str | None = None
    seq: int = 0

    def evolve(self, **changes: Any) -> Job:
        """A copy with `changes` (what `dataclasses.replace` does, without re-running __init__:
        the submit path evolves every job twice)."""
        unknown = changes.keys() - _JOB_FIELDS
        if unknown:
            raise TypeError(f"Job has no field {sorted(unknown)[0]!r}")
        new = object.__new__(Job)
        for name in _JOB_FIELDS:
            object.__setattr__(new, name, changes[name] if name in changes else getattr(self, name))
        return new

    def to_public(self) -> dict[str, Any]:
        return {
            "job_id": self.id,
            "tenant": self.tenant,
            "topic": self.topic,
            "prompt": self.prompt,
            "labels": self.labels,
            "meta": self.meta,
            "attachments": [
                {k: a.get(k) for k in ("name", "content_type", "size")} for a in self.attachments
            ],
            "status": self.status,
            "job_hash": self.job_hash,
            "policy_snapshot": self.policy_snapshot,
            "submitted_by": self.identity_id,
            "idempotency_key": self.idempotency_key,
            "derived": _public_derived(self.derived),
            # A quarantined output and error are never shown, nor their preview: reviewers see
            # it, and release or discard the output (/api/v1/quarantine).
            "result": None if self.status == "quarantined" else self.result,
            "error": None if self.status == "quarantined" else self.error,
            "attempts": self.attempts,
            "lease_expires_at": rfc3339(self.lease_expires_at),
            "remediated_from": self.remediated_from,
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(self.updated_at),
        }


# What the output gate's record in `derived.output` shows every reader of the job; the rest
# (findings' paths and excerpts, the preview) is for reviewers.
_PUBLIC_GATE = ("decision", "rule_id", "reason", "complete", "worker_status", "review")


def _public_derived(derived: dict[str, Any]) -> dict[str, Any]:
    """`derived` as the job's readers see it: the output gate's record reduced to its decision
    and, per detector, how many findings (probe F2: the preview was readable by the submitter)."""
    gate = derived.get("output")
    if not isinstance(gate, dict):
        return derived
    public = {k: gate[k] for k in _PUBLIC_GATE if k in gate}
    counts: dict[str, int] = {}
    for finding in gate.get("findings") or ():
        name = finding.get("detector") if isinstance(finding, dict) else None
        if isinstance(name, str):
            counts[name] = counts.get(name, 0) + 1
    public["findings"] = [{"detector": name, "count": n} for name, n in counts.items()]
    return {**derived, "output": public}


def job_context(job: Job, *, approved: bool | None = None) -> dict[str, Any]:
    """Flatten a job into the policy engine's request context (DESIGN.md section 3)."""
    ctx: dict[str, Any] = {
        "topic": job.topic,
        "tenant": job.tenant,
        # Compared in one spelling (NFKC, case-folded), as the loader spells the rules' values.
        "labels": canon_labels(job.labels),
        "capability": job.meta.get("capability"),
        "risk_tags": job.meta.get("risk_tags") or [],
        "requester_role": list(job.requester_roles),
    }
    if approved is not None:
        ctx["approved"] = approved
    return ctx


_JOB_FIELDS = frozenset(f.name for f in fields(Job))


def request_of(job: Job) -> dict[str, Any]:
    """The canonical request of a drafted job, as a decision record keeps it: what was judged,
    without attachment contents (names, types and sizes are enough to tell what was sent)."""
    return {
        "topic": job.topic,
        "prompt": job.prompt,
        "labels": job.labels,
        "meta": job.meta,
        "attachments": [
            {
                "name": a.get("name"),
                "content_type": a.get("content_type"),
                "size": a.get("size"),
                "sha256": hashlib.sha256(str(a.get("content_base64", "")).encode()).hexdigest(),
            }
            for a in job.attachments
        ],
        "job_hash": job.job_hash,
        "submitted_by": job.identity_id,
        "requester_roles": list(job.requester_roles),
        "idempotency_key": job.idempotency_key,
    }

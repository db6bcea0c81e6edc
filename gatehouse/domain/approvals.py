"""Human approvals: requests, signed single-use tokens, and their verification.

A token is Ed25519-signed claims `{job_id, job_hash, policy_snapshot, scope, approver, issued_at,
expires_at, nonce}`, signed with the server's key. The dispatch gate accepts it only for the job
it names, with the job unchanged since (its hash recomputed from the stored fields), before it
expires, and once: the nonce is consumed in the same transaction as the dispatch.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from gatehouse.crypto import SigningKey, VerifyKey, canonical
from gatehouse.domain.ids import new_id, rfc3339
from gatehouse.domain.jobs import Job, job_hash

__all__ = [
    "DEFAULT_TTL",
    "Approval",
    "issue_token",
    "new_request",
    "recomputed_hash",
    "token_problem",
]

DEFAULT_TTL = 15 * 60


@dataclass(frozen=True, slots=True)
class Approval:
    id: str
    job_id: str
    tenant: str
    job_hash: str
    policy_snapshot: str | None
    rule_id: str
    reason: str
    status: str  # pending | approved | rejected | expired | stale | consumed
    requested_at: float
    expires_at: float
    ttl: int
    requested_by: str
    approver_id: str | None = None
    decided_at: float | None = None
    comment: str | None = None
    token: dict[str, Any] | None = None
    nonce: str | None = None
    consumed_at: float | None = None

    def evolve(self, **changes: Any) -> Approval:
        return replace(self, **changes)

    def to_public(self) -> dict[str, Any]:
        return {
            "approval_id": self.id,
            "job_id": self.job_id,
            "status": self.status,
            "rule_id": self.rule_id,
            "reason": self.reason,
            "policy_snapshot": self.policy_snapshot,
            "job_hash": self.job_hash,
            "requested_at": rfc3339(self.requested_at),
            "expires_at": rfc3339(self.expires_at),
            "approver": self.approver_id,
            "decided_at": rfc3339(self.decided_at),
            "comment": self.comment,
            "token": self.token,
            "consumed_at": rfc3339(self.consumed_at),
        }


def new_request(
    job: Job, *, rule_id: str, reason: str, ttl: int | None, snapshot: str | None, at: float
) -> Approval:
    ttl = ttl or DEFAULT_TTL
    return Approval(
        id=new_id("apr"),
        job_id=job.id,
        tenant=job.tenant,
        job_hash=job.job_hash,
        policy_snapshot=snapshot,
        rule_id=rule_id,
        reason=reason,
        status="pending",
        requested_at=at,
        expires_at=at + ttl,
        ttl=ttl,
        requested_by=job.identity_id,
    )


def issue_token(approval: Approval, job: Job, *, approver: str, key: SigningKey, at: float) -> dict[str, Any]:
    claims = {
        "job_id": job.id,
        "job_hash": approval.job_hash,
        "policy_snapshot": approval.policy_snapshot,
        "scope": {
            "tenant": job.tenant,
            "topic": job.topic,
            "capability": job.meta.get("capability"),
        },
        "approver": approver,
        "issued_at": at,
        "expires_at": at + approval.ttl,
        "nonce": secrets.token_hex(16),
    }
    return {"claims": claims, "key_id": key.key_id, "sig": key.sign(canonical(claims))}


def recomputed_hash(job: Job) -> str:
    """The job's hash from its stored fields now: differs from `job.job_hash` if it was edited."""
    return job_hash(
        tenant=job.tenant,
        topic=job.topic,
        prompt=job.prompt,
        labels=job.labels,
        meta=job.meta,
        attachments=job.attachments,
    )


def token_problem(token: Any, job: Job, key: VerifyKey, *, now: float) -> str | None:
    """Why `token` cannot release `job` (`forged`, `wrong_job`, `job_changed`, `expired`)."""
    if not isinstance(token, Mapping) or not isinstance(token.get("claims"), Mapping):
        return "forged"
    claims, sig = token["claims"], token.get("sig")
    if (
        token.get("key_id") != key.key_id
        or not isinstance(sig, str)
        or not key.verify(canonical(dict(claims)), sig)
    ):
        return "forged"
    if claims.get("job_id") != job.id:
        return "wrong_job"
    if claims.get("job_hash") != job.job_hash or recomputed_hash(job) != job.job_hash:
        return "job_changed"
    expires = claims.get("expires_at")
    if not isinstance(expires, int | float) or now >= expires:
        return "expired"
    return None

"""Human approvals: requests, signed single-use tokens, and their verification.

Two kinds share one queue. A job approval's token is Ed25519-signed claims `{job_id, job_hash,
policy_snapshot, scope, approver, issued_at, expires_at, nonce}`; the dispatch gate accepts it only
for the job it names, with the job unchanged since (its hash recomputed from the stored fields),
before it expires, and once: the nonce is consumed in the same transaction as the dispatch.

A step approval (`kind: step`) asks about one proposed tool call. Its token's claims are
`{approval_id, kind, session_id, step_id, scope (the target), step_hash, policy_snapshot, approver,
issued_at, expires_at, nonce, key_id}`; the step gate accepts it only for that very step (session,
step id, target and the hash of its params), before it expires, signed by the service's own key,
and once: the nonce is consumed in the transaction that moves the step to `allow`.
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
    "JOB",
    "STEP",
    "Approval",
    "issue_step_token",
    "issue_token",
    "new_request",
    "new_step_request",
    "recomputed_hash",
    "step_token_problem",
    "token_problem",
]

JOB = "job"
STEP = "step"

DEFAULT_TTL = 15 * 60


@dataclass(frozen=True, slots=True)
class Approval:
    id: str
    job_id: str | None  # None for a step approval
    tenant: str
    job_hash: str | None  # None for a step approval
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
    kind: str = JOB
    # A step approval names its step: the session, the step id, the target and the step's hash.
    session_id: str | None = None
    step_id: str | None = None
    target: str | None = None
    step_hash: str | None = None

    def evolve(self, **changes: Any) -> Approval:
        return replace(self, **changes)

    def to_public(self) -> dict[str, Any]:
        subject: dict[str, Any]
        if self.kind == STEP:
            subject = {
                "session_id": self.session_id,
                "step_id": self.step_id,
                "target": self.target,
                "step_hash": self.step_hash,
            }
        else:
            subject = {"job_id": self.job_id, "job_hash": self.job_hash}
        return {
            "approval_id": self.id,
            "kind": self.kind,
            **subject,
            "status": self.status,
            "rule_id": self.rule_id,
            "reason": self.reason,
            "policy_snapshot": self.policy_snapshot,
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


def new_step_request(
    *,
    tenant: str,
    session_id: str,
    step_id: str,
    target: str,
    step_hash: str,
    requested_by: str,
    rule_id: str,
    reason: str,
    ttl: int | None,
    snapshot: str | None,
    at: float,
) -> Approval:
    ttl = ttl or DEFAULT_TTL
    return Approval(
        id=new_id("apr"),
        job_id=None,
        tenant=tenant,
        job_hash=None,
        policy_snapshot=snapshot,
        rule_id=rule_id,
        reason=reason,
        status="pending",
        requested_at=at,
        expires_at=at + ttl,
        ttl=ttl,
        requested_by=requested_by,
        kind=STEP,
        session_id=session_id,
        step_id=step_id,
        target=target,
        step_hash=step_hash,
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


def issue_step_token(approval: Approval, *, approver: str, key: SigningKey, at: float) -> dict[str, Any]:
    """The signed token that lets the step `approval` names answer `allow`, once."""
    claims = {
        "approval_id": approval.id,
        "kind": STEP,
        "session_id": approval.session_id,
        "step_id": approval.step_id,
        "scope": approval.target,
        "step_hash": approval.step_hash,
        "policy_snapshot": approval.policy_snapshot,
        "approver": approver,
        "issued_at": at,
        "expires_at": at + approval.ttl,
        "nonce": secrets.token_hex(16),
        "key_id": key.key_id,
    }
    return {"claims": claims, "key_id": key.key_id, "sig": key.sign(canonical(claims))}


def step_token_problem(
    token: Any,
    approval: Approval,
    *,
    session_id: str,
    step_id: str,
    target: str,
    step_hash: str,
    key: VerifyKey,
    now: float,
) -> str | None:
    """Why `token` cannot release the step `(session_id, step_id)` proposing `target` with the
    params whose hash is `step_hash` (`forged`, `wrong_kind`, `wrong_approval`, `wrong_session`,
    `wrong_step`, `wrong_scope`, `step_changed`, `expired`), or None.

    Every field is checked although the signature covers them: a genuine token of another step
    is still signed by this service, and must not release this one.
    """
    if not isinstance(token, Mapping) or not isinstance(token.get("claims"), Mapping):
        return "forged"
    claims, sig = token["claims"], token.get("sig")
    if (
        token.get("key_id") != key.key_id
        or claims.get("key_id") != key.key_id
        or not isinstance(sig, str)
        or not key.verify(canonical(dict(claims)), sig)
    ):
        return "forged"
    expected = (
        ("kind", STEP, "wrong_kind"),
        ("approval_id", approval.id, "wrong_approval"),
        ("nonce", approval.nonce, "wrong_approval"),
        ("session_id", session_id, "wrong_session"),
        ("step_id", step_id, "wrong_step"),
        ("scope", target, "wrong_scope"),
        ("step_hash", step_hash, "step_changed"),
    )
    for name, value, problem in expected:
        if value is None or claims.get(name) != value:
            return problem
    expires = claims.get("expires_at")
    if not isinstance(expires, int | float) or now >= expires:
        return "expired"
    return None

"""What goes into the audit log, and who did it.

Every driver builds its entries with the functions below (one per kind of change), so the log
says the same thing whichever store wrote it; `audit.writer` chains them.

The actor and request id travel in context variables, set once at the edge (authentication,
the request id middleware, the scheduler's own tasks), so that the store can stamp every entry
it writes inside the transaction of the change, without threading them through every call.
Raw prompts and outputs never enter the log: only their sha256 and a redacted preview.
"""

from __future__ import annotations

import hashlib
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gatehouse.audit.binding import decision_digest, job_digest
from gatehouse.audit.chain import redact_preview
from gatehouse.domain.approvals import Approval
from gatehouse.domain.containment import Containment
from gatehouse.domain.credentials import IssuedCredential
from gatehouse.domain.identity import Identity
from gatehouse.domain.jobs import Job
from gatehouse.domain.records import DecisionRecord
from gatehouse.errors import BadRequest
from gatehouse.policy._durations import parse_duration

__all__ = [
    "AuditEvent",
    "adapter_call_event",
    "approval_consumed_event",
    "approval_event",
    "contained_event",
    "credential_issued_event",
    "credentials_revoked_event",
    "current_actor",
    "current_request_id",
    "decision_event",
    "identity_created_event",
    "identity_revoked_event",
    "job_submitted_event",
    "lifted_event",
    "policy_installed_event",
    "secret_deleted_event",
    "secret_set_event",
    "state_event",
    "stream_for",
]

current_actor: ContextVar[str | None] = ContextVar("gatehouse_actor", default=None)
current_request_id: ContextVar[str | None] = ContextVar("gatehouse_request_id", default=None)

SYSTEM = "system"


def parse_since(since: str | None, *, now: float | None = None) -> tuple[int, float | None]:
    """`since` is a sequence number, an RFC 3339 time or a time ago (`90s`, `15m`, `1h`, `2d`):
    (seq, None) or (0, timestamp)."""
    if not since:
        return 0, None
    if since.isdigit():
        return int(since), None
    if since[-1:] in ("s", "m", "h", "d", "w") and since[:-1].isdigit():
        try:
            return 0, (time.time() if now is None else now) - parse_duration(since)
        except ValueError:
            pass  # `0h`: reported below with the accepted forms
    try:
        return 0, datetime.fromisoformat(since.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise BadRequest(
            f"`since` must be a sequence number, an RFC 3339 time or a time ago such as `1h`, not `{since}`",
            code="invalid_since",
        ) from None


def stream_for(tenant: str | None) -> str:
    return f"tenant:{tenant}" if tenant else SYSTEM


@dataclass(frozen=True, slots=True)
class AuditEvent:
    stream: str
    type: str
    data: dict[str, Any] = field(default_factory=dict)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def job_submitted_event(job: Job) -> AuditEvent:
    return AuditEvent(
        stream_for(job.tenant),
        "job.submitted",
        {
            "job_id": job.id,
            "identity_id": job.identity_id,
            "topic": job.topic,
            "status": job.status,
            "job_hash": job.job_hash,
            "prompt_sha256": _sha(job.prompt),
            "prompt_preview": redact_preview(job.prompt),
            "labels": job.labels,
            "capability": job.meta.get("capability"),
            "risk_tags": job.meta.get("risk_tags") or [],
            "attachments": [
                {"name": a.get("name"), "sha256": _sha(str(a.get("content_base64", "")))}
                for a in job.attachments
            ],
            "remediated_from": job.remediated_from,
            "row_sha256": job_digest(job),  # binds the job row (`audit.binding`)
        },
    )


def decision_event(record: DecisionRecord) -> list[AuditEvent]:
    # The whole public record (schemas/decision-record.schema.json), except the prompt of the
    # request a denied submit kept: the log gets its sha256 and a redacted preview, as for jobs.
    data = record.to_public()
    data["row_sha256"] = decision_digest(record)  # binds the decision row (`audit.binding`)
    if record.request is not None:
        request = dict(record.request)
        prompt = str(request.pop("prompt", ""))
        request["prompt_sha256"] = _sha(prompt)
        request["prompt_preview"] = redact_preview(prompt)
        data["request"] = request
    events = [AuditEvent(stream_for(record.tenant), "decision", data)]
    if record.fail_mode_applied and record.result == "allow":
        events.append(AuditEvent(stream_for(record.tenant), "fail_open", data))
    return events


def state_event(
    job: Job, old: str, new: str, event: str, fields: dict[str, Any], *, row: Job | None = None
) -> AuditEvent:
    """`row`: the job as the change left it, whose digest binds the row to this entry."""
    data: dict[str, Any] = {"job_id": job.id, "from": old, "to": new, "event": event}
    if row is not None:
        data["row_sha256"] = job_digest(row)
    if "result" in fields and fields["result"] is not None:
        data["result_sha256"] = _sha(repr(fields["result"]))
    if fields.get("lease_owner"):
        data["lease_owner"] = fields["lease_owner"]
    if fields.get("error"):
        data["error_preview"] = redact_preview(str(fields["error"]))
    return AuditEvent(stream_for(job.tenant), "job.state", data)


def identity_created_event(identity: Identity) -> AuditEvent:
    return AuditEvent(SYSTEM, "identity.created", {**identity.to_public(), "tenant": identity.tenant})


def identity_revoked_event(identity_id: str) -> AuditEvent:
    return AuditEvent(SYSTEM, "identity.revoked", {"id": identity_id})


def contained_event(containment: Containment) -> AuditEvent:
    return AuditEvent(SYSTEM, "incident.contained", containment.to_public())


def lifted_event(containment: Containment) -> AuditEvent:
    return AuditEvent(SYSTEM, "incident.lifted", containment.to_public())


def approval_consumed_event(nonce: str) -> AuditEvent:
    # The nonce itself stays out of the log: its hash is enough to match a replay attempt.
    return AuditEvent(SYSTEM, "approval.consumed", {"nonce_sha256": _sha(nonce)})


def approval_event(approval: Approval, what: str) -> AuditEvent:
    """A step approval `requested`, `approved`, `rejected` or `expired`, in its tenant's stream
    (a job approval's moves are its job's state entries)."""
    return AuditEvent(
        stream_for(approval.tenant),
        f"approval.{what}",
        {
            "approval_id": approval.id,
            "kind": approval.kind,
            "status": approval.status,
            "session_id": approval.session_id,
            "step_id": approval.step_id,
            "target": approval.target,
            "step_hash": approval.step_hash,
            "rule_id": approval.rule_id,
            "requested_by": approval.requested_by,
            "approver": approval.approver_id,
        },
    )


def policy_installed_event(
    *,
    snapshot: str,
    serial: int | None,
    signature: dict[str, Any] | None,
    installed_by: str | None,
    signature_verified: bool = False,
) -> AuditEvent:
    # `signed` means a trusted key's signature was checked. Without trusted keys a signature
    # block is kept but proves nothing (anyone can write `key_id: ops-prod-hsm`): it is recorded
    # as unverified, with the key id it claims, never as signed.
    sig = signature or {}
    if signature_verified:
        warning = None
    elif signature is None:
        warning = "unsigned bundle accepted (no trusted keys)"
    else:
        warning = "signature not verified (no trusted keys): the bundle counts as unsigned"
    return AuditEvent(
        SYSTEM,
        "policy.installed",
        {
            "snapshot": snapshot,
            "serial": serial,
            "signed": signature_verified,
            "signature_verified": signature_verified,
            "key_id": sig.get("key_id") if signature_verified else None,
            "claimed_key_id": None if signature_verified else sig.get("key_id"),
            "installed_by": installed_by,
            "warning": warning,
        },
    )


def secret_set_event(tenant: str, name: str, *, created: bool) -> AuditEvent:
    # The name only: never the value, nor its ciphertext.
    return AuditEvent(stream_for(tenant), "secret.set", {"name": name, "created": created})


def secret_deleted_event(tenant: str, name: str) -> AuditEvent:
    return AuditEvent(stream_for(tenant), "secret.deleted", {"name": name})


def credential_issued_event(c: IssuedCredential) -> AuditEvent:
    # What was issued to whom, for what and until when; the token itself never.
    data = c.to_public()
    del data["revoked_at"]
    return AuditEvent(stream_for(c.tenant), "credential.issued", data)


def credentials_revoked_event(tenant: str, jtis: list[str], *, by: dict[str, str]) -> AuditEvent:
    return AuditEvent(stream_for(tenant), "credential.revoked", {"jtis": jtis, "count": len(jtis), **by})


def adapter_call_event(tenant: str, data: dict[str, Any]) -> AuditEvent:
    """One call the broker made (or refused to make) for an allowed step: adapter, action, the
    params as their schema, status, HTTP status, latency, the credential by name or jti. The
    caller builds `data` from those only; no value of a secret, token or param enters it."""
    return AuditEvent(stream_for(tenant), "adapter.call", data)

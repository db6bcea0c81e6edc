"""Decision records: one value for every gate's answer, and the one builder that makes them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gatehouse.domain.ids import new_id, now, rfc3339
from gatehouse.policy import Decision

__all__ = ["DecisionRecord", "Verdict", "make_record"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the kernel (or a check before it) answered: the decision and how it was reached."""

    decision: Decision
    snapshot: str | None
    cached: bool = False
    fail_mode_applied: bool = False
    # Why the kernel could not decide, when it could not.
    unavailable: str | None = None
    # The id its record will carry, when it had to be known before the record was made (a
    # shadow bundle's disagreement names it, `control.shadow`); else the record makes one.
    decision_id: str | None = None

    @property
    def result(self) -> str:
        return self.decision.decision


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """One decision, as stored and returned (DESIGN.md section 3)."""

    decision_id: str
    timestamp: float
    result: str
    rule_id: str
    reason: str
    stage: str
    policy_snapshot: str | None
    job_hash: str | None
    remediations: list[dict[str, Any]] = field(default_factory=list)
    cached: bool = False
    fail_mode_applied: bool = False
    job_id: str | None = None
    tenant: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # The canonical request a submit decision judged, kept when no job row keeps it (a denied
    # submit): its remediation is rebuilt from here. See `request_of`.
    request: dict[str, Any] | None = None

    def to_public(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "decision_id": self.decision_id,
            "timestamp": rfc3339(self.timestamp),
            "result": self.result,
            # An alias of `result`, for clients that read `decision.decision` like the engine API.
            "decision": self.result,
            "rule_id": self.rule_id,
            "reason": self.reason,
            "stage": self.stage,
            "policy_snapshot": self.policy_snapshot,
            "job_hash": self.job_hash,
            "remediations": self.remediations,
            "cached": self.cached,
            "fail_mode_applied": self.fail_mode_applied,
            "job_id": self.job_id,
        }
        out.update(self.extra)
        if self.request is not None:
            out["request"] = self.request
        return out


def make_record(
    verdict: Verdict,
    *,
    stage: str,
    job_id: str | None,
    tenant: str | None,
    job_hash: str | None,
    extra: Mapping[str, Any] | None = None,
    request: dict[str, Any] | None = None,
) -> DecisionRecord:
    d = verdict.decision
    more = dict(extra or {})
    if verdict.unavailable:
        more["kernel_error"] = verdict.unavailable
    return DecisionRecord(
        decision_id=verdict.decision_id or new_id("dec"),
        timestamp=now(),
        result=d.decision,
        rule_id=d.rule_id,
        reason=d.reason,
        stage=stage,
        policy_snapshot=verdict.snapshot,
        job_hash=job_hash,
        remediations=[r.to_dict() for r in d.remediations],
        cached=verdict.cached,
        fail_mode_applied=verdict.fail_mode_applied,
        job_id=job_id,
        tenant=tenant,
        extra=more,
        request=request,
    )

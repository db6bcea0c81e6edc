"""The output gate in the job path, and the quarantine reviewers work through.

A worker's result passes the running bundle's `output_rules` (the pure judgement is
`gatehouse.output.decide`) before the job reaches a terminal state, in the same store
transaction as the state change and its `output` decision record:

- `allow`: the output is stored as sent;
- `redact`: only the redacted output and error are stored (the originals never reach the
  database);
- `quarantine`: the job becomes `quarantined`; the original output and error are kept for
  review but never shown, and the job's `derived.output` holds the findings and a preview with
  every finding masked whole. The preview is for reviewers (`GET /api/v1/quarantine`): the job
  itself shows the submitter only which detectors fired and how often (`Job.to_public`).

The whole result is judged: the output (string values, object keys, numbers) and the error a
worker reported, which is as much the worker's text as the output is.

Failing closed: with no policy loaded, or an output too large to scan completely under a rule
that applies, the output is quarantined, not let through.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from gatehouse.control.deps import Deps
from gatehouse.control.incidents import RULE_ID, Incidents
from gatehouse.control.lookup import moved_or_conflict, require_job
from gatehouse.domain import states
from gatehouse.domain.changes import JobChanges
from gatehouse.domain.identity import Identity
from gatehouse.domain.ids import new_id, now
from gatehouse.domain.jobs import Job
from gatehouse.domain.records import DecisionRecord
from gatehouse.errors import Conflict, Forbidden
from gatehouse.output import OutputVerdict
from gatehouse.store.base import JobPage

__all__ = ["Judged", "OutputGate"]

_FINISH_EVENT = {states.SUCCEEDED: "succeed", states.FAILED: "fail"}


@dataclass(frozen=True, slots=True)
class Judged:
    """What `finish` stores: the transition, its fields, and the output decision record."""

    event: str
    fields: dict[str, Any]
    record: DecisionRecord


class OutputGate:
    def __init__(self, *, deps: Deps, incidents: Incidents) -> None:
        self.incidents = incidents
        self.store = deps.store
        self.kernel = deps.kernel
        self.metrics = deps.metrics

    def verdict(
        self, output: Any, *, topic: str | None, target: str | None = None, error: str | None = None
    ) -> OutputVerdict:
        """The output rules' answer for a job's output (`topic`) or a tool call's (`target`, with
        its job's `topic` when it runs in one). Closed when it cannot judge: no bundle loaded, or
        an output too large to scan whole under rules that apply, is held for review."""
        judged = self.kernel.judge_output(output, topic=topic, target=target, error=error)
        if judged is None:
            return OutputVerdict(
                decision="quarantine",
                rule_id="kernel_unavailable",
                reason="no policy bundle is loaded: the output is held for review",
                findings=(),
                redacted=None,
                complete=False,
            )
        if not judged.complete and self.kernel.output_rules_apply(topic, target):
            return _hold(
                judged,
                "output_not_fully_scanned",
                "the output is too large to scan completely: held for review",
            )
        return judged

    def judge(self, job: Job, *, status: str, output: Any, error: str | None) -> Judged:
        # Snapshot first: the kernel is asked synchronously below, so no bundle swap falls between.
        snapshot = self.kernel.snapshot
        verdict = self.verdict(output, topic=job.topic, error=error)
        unjudged = verdict.rule_id == "kernel_unavailable"  # before a containment hold renames it
        contained = self.incidents.check(job.tenant, job.identity_id)
        if contained is not None:
            # A result that arrives after its tenant or identity was contained is held for review.
            why = f"{contained.kind} `{contained.target}` is contained (incident {contained.id})"
            verdict = _hold(verdict, RULE_ID, why)
        gate: dict[str, Any] = {
            "decision": verdict.decision,
            "rule_id": verdict.rule_id,
            "reason": verdict.reason,
            "findings": [f.to_dict() for f in verdict.findings],
            "complete": verdict.complete,
            "worker_status": status,
        }
        fields: dict[str, Any] = {
            "error": error,
            "lease_owner": None,
            "lease_expires_at": None,
        }
        if verdict.decision == "quarantine":
            event = "quarantine"
            # Kept for the reviewer's release; never shown while held.
            fields["result"] = output
            gate["preview"] = verdict.redacted
            gate["preview_error"] = verdict.redacted_error
        else:
            event = _FINISH_EVENT[status]
            redact = verdict.decision == "redact"
            fields["result"] = verdict.redacted if redact else output
            fields["error"] = verdict.redacted_error if redact else error
        fields["derived"] = {**job.derived, "output": gate}
        record = DecisionRecord(
            decision_id=new_id("dec"),
            timestamp=now(),
            result=verdict.decision,
            rule_id=verdict.rule_id,
            reason=verdict.reason,
            stage="output",
            policy_snapshot=snapshot,
            job_hash=job.job_hash,
            fail_mode_applied=unjudged,
            job_id=job.id,
            tenant=job.tenant,
            extra={"findings": gate["findings"], "complete": verdict.complete, "worker_status": status},
        )
        self.metrics.output_decisions.labels(verdict.decision).inc()
        return Judged(event=event, fields=fields, record=record)

    # quarantine review ---------------------------------------------------------------------
    async def quarantined(self, tenant: str | None, limit: int = 200, cursor: str | None = None) -> JobPage:
        """One page of the held outputs, newest first; `cursor` is the previous page's."""
        return await self.store.list_jobs(tenant, status=states.QUARANTINED, limit=limit, cursor=cursor)

    async def release(self, who: Identity, tenant: str | None, job_id: str, comment: str) -> Job:
        """Let a held output through: the job ends as the worker reported it."""
        job = await self._held(who, tenant, job_id)
        worker_status = job.derived.get("output", {}).get("worker_status", states.SUCCEEDED)
        return await self._review(
            who, job, "release" if worker_status == states.SUCCEEDED else "discard", "release", comment, {}
        )

    async def discard(self, who: Identity, tenant: str | None, job_id: str, comment: str) -> Job:
        """Withhold a held output for good: the job fails and the output is erased."""
        job = await self._held(who, tenant, job_id)
        fields = {"result": None, "error": "output discarded by a reviewer"}
        return await self._review(who, job, "discard", "discard", comment, fields)

    async def _held(self, who: Identity, tenant: str | None, job_id: str) -> Job:
        """The quarantined job `who` may review (never its own)."""
        job = await require_job(self.store, job_id, tenant)
        if job.status != states.QUARANTINED:
            raise Conflict(
                f"job `{job_id}` is `{job.status}`, not quarantined",
                code="invalid_state",
                details={"status": job.status},
            )
        if job.identity_id == who.id:
            raise Forbidden("an identity cannot review the output of its own job", code="self_review")
        # A contained tenant's own reviewers may be the compromised party (403 `tenant_contained`).
        self.incidents.require_open(who, job.tenant, "release or discard held output")
        return job

    async def _review(
        self,
        who: Identity,
        job: Job,
        event: str,
        action: str,
        comment: str,
        fields: dict[str, Any],
    ) -> Job:
        gate = {
            **job.derived.get("output", {}),
            "review": {"action": action, "by": who.id, "comment": comment},
        }
        record = DecisionRecord(
            decision_id=new_id("dec"),
            timestamp=now(),
            result="allow" if action == "release" else "quarantine",
            rule_id=f"reviewer_{action}",
            reason=comment or f"{action}d by reviewer {who.name}",
            stage="output",
            policy_snapshot=self.kernel.snapshot,
            job_hash=job.job_hash,
            job_id=job.id,
            tenant=job.tenant,
            extra={"reviewer": who.id, "action": action},
        )
        moved = moved_or_conflict(
            await self.store.transition(
                job.id,
                event,
                record=record,
                at=now(),
                changes=JobChanges(derived={**job.derived, "output": gate}, **fields),
            ),
            job.id,
        )
        self.metrics.jobs_finished.labels(moved.status).inc()
        self.metrics.output_decisions.labels(f"reviewer_{action}").inc()
        return moved


def _hold(verdict: OutputVerdict, rule_id: str, reason: str) -> OutputVerdict:
    """`verdict` turned into a quarantine (kept as it is if it already is one)."""
    if verdict.decision == "quarantine":
        return verdict
    return replace(verdict, decision="quarantine", rule_id=rule_id, reason=reason)

"""The approval flow: who may approve what, and what an approval does to a job.

Only identities with the `approver` role act (an admin needs the role too); nobody approves a job
they submitted; while a tenant is contained, nobody of it approves or rejects (403
`tenant_contained`); an approver of one tenant never sees another tenant's jobs (404). Approving
issues a signed token and moves the job back to the queue in one transaction; the dispatch gate then
checks the token (`gatehouse.domain.approvals.token_problem`) and consumes its nonce as it leases.
Step approvals (`kind: step`) share the queue and these rules; what they do to their step is
`control/step_approvals.py`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from gatehouse.audit.events import AuditEvent, stream_for
from gatehouse.bus.subjects import JOBS_QUEUED
from gatehouse.control.deps import Deps
from gatehouse.control.incidents import Incidents
from gatehouse.control.lookup import moved_or_conflict, require_job
from gatehouse.control.step_approvals import StepApprovals
from gatehouse.crypto import SigningKey
from gatehouse.domain import states
from gatehouse.domain.approvals import STEP, Approval, issue_token, token_problem
from gatehouse.domain.changes import ApprovalUpdate
from gatehouse.domain.identity import Identity
from gatehouse.domain.ids import new_id, now
from gatehouse.domain.jobs import Job
from gatehouse.domain.records import DecisionRecord
from gatehouse.errors import Conflict, Forbidden, NotFound

__all__ = ["ApprovalFlow", "QueuePage", "approval_record"]

log = logging.getLogger("gatehouse.approvals")


@dataclass(frozen=True, slots=True)
class QueuePage:
    """A page of the approval queue as approvers see it; `next_cursor` None at the end."""

    approvals: list[dict[str, Any]]
    next_cursor: str | None


def approval_record(
    job: Job,
    approval: Approval,
    *,
    result: str,
    event: str,
    reason: str,
    rule_id: str | None = None,
    stage: str = "approval",
    snapshot: str | None = None,
) -> DecisionRecord:
    """Approval events go into the job's decision records, beside the gates' decisions."""
    return DecisionRecord(
        decision_id=new_id("dec"),
        timestamp=now(),
        result=result,
        rule_id=rule_id or approval.rule_id,
        reason=reason,
        stage=stage,
        policy_snapshot=snapshot or approval.policy_snapshot,
        job_hash=job.job_hash,
        job_id=job.id,
        tenant=job.tenant,
        extra={"approval_event": event, "approval_id": approval.id},
    )


class ApprovalFlow:
    def __init__(self, *, deps: Deps, key: SigningKey, incidents: Incidents, steps: StepApprovals) -> None:
        self.incidents = incidents
        self.steps = steps
        self.store = deps.store
        self.bus = deps.bus
        self.metrics = deps.metrics
        self.key = key

    @staticmethod
    def _require_approver(who: Identity) -> None:
        # Approving is a person's judgement: an admin needs the approver role like anybody else.
        who.require_role("approver", admin=False)

    async def pending(
        self,
        who: Identity,
        tenant: str,
        status: str | None,
        *,
        limit: int = 200,
        cursor: str | None = None,
    ) -> QueuePage:
        """One page of the queue, oldest first, each approval with what an approver judges it
        by. Describing one costs several store reads: only the page's approvals are described,
        so a long queue costs one page at a time."""
        self._require_approver(who)
        page = await self.store.list_approvals(tenant, status, limit, cursor)
        out = []
        for a in page.approvals:
            if a.kind == STEP:
                out.append(await self.steps.describe(a))
                continue
            job = await self.store.get_job(a.job_id or "", tenant)
            if job is None:
                continue
            requester = await self.store.get_identity(a.requested_by)
            records = await self.store.decisions(job.id)
            decision = next(
                (
                    r
                    for r in reversed(records)
                    if r.rule_id == a.rule_id and r.stage in ("submit", "dispatch")
                ),
                None,
            )
            item = a.to_public()
            item.pop("token", None)
            item.update(
                job=job.to_public(),
                decision=decision.to_public() if decision else None,
                derived=job.derived,
                requested_by={"id": a.requested_by, "name": requester.name if requester else None},
                previous=await self._previous(job),
            )
            out.append(item)
        return QueuePage(approvals=out, next_cursor=page.next_cursor)

    async def show(self, who: Identity, tenant: str, approval_id: str) -> dict[str, Any]:
        """One approval, by its id (or a job's id: its latest). Approvers of the tenant see it,
        and so does the identity that asked (an agent waiting for its answer); anybody else,
        and another tenant, get 404."""
        a = await self.store.approval(approval_id)
        if a is None:
            a = await self.store.latest_approval(approval_id)
        if a is None or a.tenant != tenant or not (who.has_role("approver") or a.requested_by == who.id):
            raise NotFound(f"no approval `{approval_id}`", code="approval_not_found")
        if a.kind == STEP:
            return await self.steps.describe(a)
        item = a.to_public()
        item.pop("token", None)
        return item

    async def _step_approval(self, approval_id: str, tenant: str) -> Approval | None:
        """The step approval `approval_id` of `tenant` (None: the id names a job, or nothing)."""
        a = await self.store.approval(approval_id)
        return a if a is not None and a.kind == STEP and a.tenant == tenant else None

    async def _previous(self, job: Job) -> dict[str, Any] | None:
        """The attempt this job retries, and what changed: the job it remediates, else an
        earlier job of the same requester with the same idempotency key. Another job of the same
        requester on the same topic is no retry: showing it as one would have an approver judge
        a diff against an unrelated job."""
        prev, why = None, ""
        if job.remediated_from:
            prev, why = await self.store.get_job(job.remediated_from, job.tenant), "remediation"
        if prev is None and job.idempotency_key:
            page = await self.store.list_jobs(job.tenant, topic=job.topic, limit=50)
            prev = next(
                (
                    j
                    for j in page.jobs
                    if j.seq < job.seq
                    and j.identity_id == job.identity_id
                    and j.idempotency_key == job.idempotency_key
                ),
                None,
            )
            why = "same_idempotency_key"
        if prev is None:
            return None
        diff = {}
        for field in ("topic", "prompt", "labels", "meta"):
            before, after = getattr(prev, field), getattr(job, field)
            if before != after:
                diff[field] = {"before": before, "after": after}
        return {"job_id": prev.id, "status": prev.status, "reason": why, "diff": diff}

    async def _refuse_forgery(self, who: Identity, job: Job, problem: str) -> None:
        self.metrics.approval_forgery.inc()
        self.metrics.approval_event("forged")
        await self.store.append_audit(
            [
                AuditEvent(
                    stream_for(job.tenant),
                    "approval.forged",
                    {"job_id": job.id, "problem": problem, "presented_by": who.id},
                )
            ]
        )
        raise Forbidden(
            f"the approval token is not valid for job `{job.id}` ({problem})",
            code="approval_forged",
            details={"problem": problem},
        )

    async def _open_request(self, who: Identity, job: Job, latest: Approval | None) -> Approval:
        """The pending request `who` may decide on, or the reason they may not."""
        if job.identity_id == who.id:
            raise Forbidden("nobody approves a job they submitted", code="self_approval")
        if (
            job.status != states.PENDING_APPROVAL
            or latest is None
            or latest.status != states.APPROVAL_PENDING
        ):
            raise Conflict(
                f"job `{job.id}` is `{job.status}`, not waiting for approval",
                code="not_pending",
                details={"status": job.status},
            )
        if now() >= latest.expires_at:
            await self.expire(latest)
            raise Conflict(f"the approval request for job `{job.id}` expired", code="approval_expired")
        return latest

    async def approve(
        self, who: Identity, tenant: str, job_id: str, comment: str | None, token: Any = None
    ) -> dict[str, Any]:
        self._require_approver(who)
        step = await self._step_approval(job_id, tenant)
        if step is not None:
            return await self.steps.approve(who, step, comment)
        job = await require_job(self.store, job_id, tenant)
        self.incidents.require_open(who, job.tenant, "approve or reject a job")
        latest = await self.store.latest_approval(job.id)
        if token is not None:
            problem = token_problem(token, job, self.key.verify_key, now=now())
            if problem in ("forged", "wrong_job"):
                await self._refuse_forgery(who, job, problem)
            if latest is not None and latest.token == token and latest.status == states.APPROVAL_APPROVED:
                return {
                    "job_id": job.id,
                    "status": job.status,
                    "approval": latest.to_public(),
                    "token": token,
                }
            raise Conflict(
                f"that approval token can no longer be used ({problem or 'already used'})",
                code="approval_token_used",
                details={"problem": problem},
            )
        latest = await self._open_request(who, job, latest)
        issued = issue_token(latest, job, approver=who.id, key=self.key, at=now())
        result = await self._decide(
            who,
            job,
            latest,
            states.APPROVAL_APPROVED,
            comment,
            {"token": issued, "nonce": issued["claims"]["nonce"]},
        )
        await self.bus.publish(JOBS_QUEUED, {"job_id": job.id, "topic": job.topic})
        return {**result, "token": issued}

    async def reject(self, who: Identity, tenant: str, job_id: str, comment: str | None) -> dict[str, Any]:
        self._require_approver(who)
        step = await self._step_approval(job_id, tenant)
        if step is not None:
            return await self.steps.reject(who, step, comment)
        job = await require_job(self.store, job_id, tenant)
        self.incidents.require_open(who, job.tenant, "approve or reject a job")
        latest = await self._open_request(who, job, await self.store.latest_approval(job.id))
        return await self._decide(who, job, latest, states.APPROVAL_REJECTED, comment, {})

    async def _decide(
        self,
        who: Identity,
        job: Job,
        latest: Approval,
        outcome: str,
        comment: str | None,
        more: dict[str, Any],
    ) -> dict[str, Any]:
        """Record a person's decision: the approval row, the job and the decision record move
        together in one transaction (`approved` queues the job, `rejected` ends it)."""
        at = now()
        verb = {states.APPROVAL_APPROVED: "approve", states.APPROVAL_REJECTED: "reject"}[outcome]
        reason = f"{outcome} by {who.name}" + (f": {comment}" if comment else "")
        record = approval_record(
            job,
            latest,
            result="allow" if outcome == states.APPROVAL_APPROVED else "deny",
            event=outcome,
            reason=reason,
        )
        update = ApprovalUpdate(latest.id, verb, approver_id=who.id, decided_at=at, comment=comment, **more)
        moved = moved_or_conflict(
            await self.store.transition(job.id, verb, record=record, at=at, approval=update),
            job.id,
            code="not_pending",
        )
        self.metrics.approval_event(outcome)
        self.metrics.approval_seconds.observe(at - latest.requested_at)
        return {
            "job_id": job.id,
            "status": moved.status,
            "approval": latest.evolve(**update.values()).to_public(),
        }

    async def expire(self, approval: Approval) -> None:
        if approval.kind == STEP:
            await self.steps.expire(approval)
            return
        job = await self.store.get_job(approval.job_id or "")
        if job is None:
            return
        record = approval_record(
            job,
            approval,
            result="deny",
            event=states.APPROVAL_EXPIRED,
            rule_id="approval_expired",
            reason="nobody approved the job in time",
        )
        moved = await self.store.transition(
            job.id,
            "approval_expire",
            record=record,
            at=now(),
            approval=ApprovalUpdate(approval.id, "expire"),
        )
        if moved is not None:
            self.metrics.approval_event(states.APPROVAL_EXPIRED)
            self.metrics.jobs_finished.labels(states.EXPIRED).inc()

    async def expire_overdue(self) -> int:
        overdue = await self.store.overdue_approvals(now())
        for approval in overdue:
            await self.expire(approval)
        return len(overdue)

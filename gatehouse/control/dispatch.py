"""The dispatch gate: a queued job is judged again before any worker gets it.

The job is re-checked against the *current* policy snapshot through the decision pipeline
(a revoked submitter first, rule `identity_revoked`; then containment; then the kernel); an
approved job's token must be genuine, for this very job, unexpired and unused, and its nonce is
consumed in the same transaction that hands the job out. The hand-off is a compare-and-set from
`queued` to `dispatched` in the store, so one job can never be leased twice at once, even with
several schedulers on one database. Leases, results and lease expiry are `control/leases.py`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from gatehouse.control.approvals import approval_record
from gatehouse.control.decide import DecisionPipeline
from gatehouse.control.deps import Deps
from gatehouse.crypto import SigningKey
from gatehouse.domain import states
from gatehouse.domain.approvals import Approval, new_request, token_problem
from gatehouse.domain.changes import ApprovalUpdate, JobChanges
from gatehouse.domain.ids import now
from gatehouse.domain.jobs import Job, job_context
from gatehouse.domain.records import DecisionRecord, Verdict, make_record
from gatehouse.policy import Decision

__all__ = ["DispatchGate"]

_STAGE = "dispatch"
_DISPATCH_EVENT = {
    "allow": "dispatch_allow",
    "deny": "dispatch_deny",
    "require_approval": "dispatch_require_approval",
}


class DispatchGate:
    def __init__(self, *, deps: Deps, pipeline: DecisionPipeline, approval_key: SigningKey) -> None:
        self.store = deps.store
        self.kernel = deps.kernel
        self.metrics = deps.metrics
        self.pipeline = pipeline
        self.approval_key = approval_key
        # job id -> (monotonic time of the next dispatch try, current delay): backoff for jobs
        # the kernel could not decide on (fail closed at dispatch means "not now").
        self._retry_at: dict[str, tuple[float, float]] = {}

    def backing_off(self, job_id: str, clock: float) -> bool:
        """Whether `job_id` waits for its next try after the kernel could not decide on it."""
        retry = self._retry_at.get(job_id)
        return retry is not None and retry[0] > clock

    async def dispatch(self, job: Job, *, owner: str, lease_seconds: int) -> Job | None:
        """The dispatch gate for one queued job: lease it, deny it, or send it for approval."""
        # A kill switch, or its submitter's revoked key, comes before approvals and the policy.
        verdict = self.pipeline.incidents.revoked(
            job.tenant, job.identity_id, self.kernel.snapshot, _STAGE
        ) or self.pipeline.contained(job.tenant, job.identity_id, _STAGE)
        if verdict is None:
            approval = await self.store.latest_approval(job.id)
            if approval is not None and approval.status == states.APPROVAL_APPROVED:
                return await self._dispatch_approved(job, approval, owner=owner, lease_seconds=lease_seconds)
            verdict = await self._judge(job)
            if verdict.fail_mode_applied and verdict.result != "allow":
                # Fail closed at dispatch means "not now", not "never": the job stays queued and
                # is retried with backoff; it is never handed out undecided.
                _, delay = self._retry_at.get(job.id, (0.0, 0.125))
                delay = min(delay * 2, 5.0)
                self._retry_at[job.id] = (asyncio.get_running_loop().time() + delay, delay)
                return None
            self._retry_at.pop(job.id, None)
        record = make_record(verdict, stage=_STAGE, job_id=job.id, tenant=job.tenant, job_hash=job.job_hash)
        return await self._apply(job, verdict, record, owner=owner, lease_seconds=lease_seconds)

    async def _judge(self, job: Job, *, approved: bool | None = None) -> Verdict:
        # The submitter's scope was checked at submit and an identity's scope never changes:
        # the dispatch gate asks the pipeline for containment and the current policy only.
        return await self.pipeline.judge(
            tenant=job.tenant,
            identity_id=job.identity_id,
            ctx=job_context(job, approved=approved),
            stage=_STAGE,
        )

    async def _apply(
        self,
        job: Job,
        verdict: Verdict,
        record: DecisionRecord,
        *,
        owner: str,
        lease_seconds: int,
        nonce: str | None = None,
        stale: Approval | None = None,
    ) -> Job | None:
        at = now()
        event = _DISPATCH_EVENT[verdict.result]
        fields: dict[str, Any] = {"policy_snapshot": verdict.snapshot}
        extra: dict[str, Any] = {}
        if event == "dispatch_allow":
            fields.update(lease_owner=owner, lease_expires_at=at + lease_seconds)
            extra["consume_nonce"] = nonce
            fields["add_attempt"] = True  # `attempts` counts the leases that handed it out
        elif event == "dispatch_require_approval":
            d = verdict.decision
            extra["new_approval"] = new_request(
                job,
                rule_id=d.rule_id,
                reason=d.reason,
                ttl=d.approval_ttl,
                snapshot=verdict.snapshot,
                at=at,
            )
            if stale is not None:
                extra["approval"] = ApprovalUpdate(stale.id, "supersede")
        moved = await self.store.transition(
            job.id, event, record=record, at=at, changes=JobChanges(**fields), **extra
        )
        if moved is not None and event == "dispatch_require_approval":
            self.metrics.approval_event(states.APPROVAL_STALE if stale is not None else "requested")
        if moved is None:
            return None  # somebody else moved it first, or the approval was used already
        if moved.status == states.DENIED:
            self.metrics.jobs_finished.labels(states.DENIED).inc()
            return None
        return moved if moved.status == states.DISPATCHED else None

    async def _dispatch_approved(
        self, job: Job, approval: Approval, *, owner: str, lease_seconds: int
    ) -> Job | None:
        """An approved job: the token must be genuine, for this job, unchanged, unexpired, and
        unused; if the policy changed since, the job is judged afresh."""
        at = now()
        problem = token_problem(approval.token, job, self.approval_key.verify_key, now=at)
        if problem is not None:
            event = "approval_expire" if problem == "expired" else "dispatch_deny"
            record = approval_record(
                job,
                approval,
                result="deny",
                event=problem,
                stage=_STAGE,
                rule_id=f"approval_{problem}",
                reason=f"the approval cannot release this job ({problem})",
            )
            if problem == "forged":
                self.metrics.approval_forgery.inc()
            moved = await self.store.transition(
                job.id,
                event,
                record=record,
                at=at,
                approval=ApprovalUpdate(approval.id, "lapse" if problem == "expired" else "invalidate"),
            )
            if moved is not None:
                self.metrics.jobs_finished.labels(moved.status).inc()
            return None
        same_policy = approval.policy_snapshot == self.kernel.snapshot
        # On the snapshot it was given for, the approval answers the rule that asked for it; on a
        # newer one, the job is judged afresh, as if never approved.
        verdict = await self._judge(job, approved=same_policy)
        if verdict.fail_mode_applied and verdict.result != "allow":
            return None
        if same_policy and verdict.result == "require_approval":
            verdict = Verdict(
                decision=Decision("allow", approval.rule_id, f"approved by {approval.approver_id}"),
                snapshot=verdict.snapshot,
                cached=verdict.cached,
                decision_id=verdict.decision_id,
            )
        record = make_record(
            verdict,
            stage=_STAGE,
            job_id=job.id,
            tenant=job.tenant,
            job_hash=job.job_hash,
            extra={"approval_id": approval.id, "policy_changed": not same_policy},
        )
        return await self._apply(
            job,
            verdict,
            record,
            owner=owner,
            lease_seconds=lease_seconds,
            nonce=approval.nonce,
            stale=approval if verdict.result == "require_approval" else None,
        )

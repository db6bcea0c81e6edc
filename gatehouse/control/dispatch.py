"""The scheduler: the dispatch gate, worker leases, results, and lease expiry.

A job leaves the queue only through `lease`, and only after the dispatch gate has re-checked
it against the *current* policy snapshot. The hand-off is a compare-and-set from `queued` to
`dispatched` in the store, so one job can never be leased twice at once, even with several
schedulers on one database.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from gatehouse.audit.events import current_actor
from gatehouse.bus import Bus
from gatehouse.config import Settings
from gatehouse.control.approvals import ApprovalFlow, approval_record
from gatehouse.control.incidents import Incidents
from gatehouse.control.outputs import OutputGate
from gatehouse.crypto import SigningKey
from gatehouse.domain import states
from gatehouse.domain.approvals import Approval, new_request, token_problem
from gatehouse.domain.changes import ApprovalUpdate, JobChanges
from gatehouse.domain.identity import Identity
from gatehouse.domain.ids import now
from gatehouse.domain.jobs import Job, job_context
from gatehouse.domain.records import DecisionRecord, Verdict, make_record
from gatehouse.errors import BadRequest, Conflict, NotFound
from gatehouse.kernel import Kernel
from gatehouse.metrics import Metrics
from gatehouse.policy import Decision, compile_glob
from gatehouse.policy.glob import GlobError
from gatehouse.store import Store

__all__ = ["Scheduler"]

log = logging.getLogger("gatehouse.scheduler")

_DISPATCH_EVENT = {
    "allow": "dispatch_allow",
    "deny": "dispatch_deny",
    "require_approval": "dispatch_require_approval",
}


def _prefix(pattern: str) -> str:
    g = compile_glob(pattern)
    if g.kind == "exact":
        return pattern
    return ".".join(g.prefix) + "." if g.prefix else ""


class Scheduler:
    def __init__(
        self,
        *,
        store: Store,
        kernel: Kernel,
        bus: Bus,
        metrics: Metrics,
        settings: Settings,
        approval_key: SigningKey | None = None,
        incidents: Incidents,
    ) -> None:
        self.incidents = incidents
        self.store = store
        self.kernel = kernel
        self.bus = bus
        self.metrics = metrics
        self.settings = settings
        self.approval_key: SigningKey | None = approval_key
        self.approval_flow: ApprovalFlow | None = None
        self.outputs = OutputGate(store=store, kernel=kernel, metrics=metrics, incidents=self.incidents)
        self._waiters: list[asyncio.Future[None]] = []
        # job id -> (monotonic time of the next dispatch try, current delay): backoff for jobs
        # the kernel could not decide on (fail closed at dispatch means "not now").
        self._retry_at: dict[str, tuple[float, float]] = {}
        # Jobs this process is judging at the dispatch gate right now. Several lease loops (the
        # built-in workers, concurrent lease calls) scan the same queue, and a job's move out of
        # `queued` commits only at the next turn of the loop: without this, each would judge the
        # same job, count a dispatch decision for it, and all but one lose the compare-and-set.
        self._in_flight: set[str] = set()
        bus.subscribe("jobs.queued", self._on_queued)

    async def _on_queued(self, _: dict[str, Any]) -> None:
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    async def _wait_for_work(self, timeout: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            pass
        finally:
            if fut in self._waiters:
                self._waiters.remove(fut)

    async def lease(
        self,
        *,
        owner: str,
        topics: Sequence[str],
        max_jobs: int,
        lease_seconds: int,
        worker: Identity | None = None,
        tenant: str | None = None,
        wait_seconds: float = 0.0,
    ) -> list[Job]:
        """Hand out up to `max_jobs` queued jobs that pass the dispatch gate."""
        try:
            globs = [compile_glob(t) for t in topics]
        except GlobError as exc:
            raise BadRequest(str(exc), code="invalid_topics") from None
        prefixes = sorted({_prefix(t) for t in topics})
        deadline = asyncio.get_running_loop().time() + wait_seconds
        while True:
            got = await self._lease_once(owner, globs, prefixes, max_jobs, lease_seconds, worker, tenant)
            remaining = deadline - asyncio.get_running_loop().time()
            if got or remaining <= 0:
                return got
            await self._wait_for_work(min(remaining, 1.0))

    async def _lease_once(
        self,
        owner: str,
        globs: Sequence[Any],
        prefixes: Sequence[str],
        max_jobs: int,
        lease_seconds: int,
        worker: Identity | None,
        tenant: str | None,
    ) -> list[Job]:
        got: list[Job] = []
        scan = max(max_jobs * 4, 16)
        clock = asyncio.get_running_loop().time()
        for job in await self.store.queued_jobs(prefixes, scan, tenant=tenant):
            if not any(g.matches(job.topic) for g in globs):
                continue
            retry = self._retry_at.get(job.id)
            if retry is not None and retry[0] > clock:
                continue
            if worker is not None and not worker.may_use_topic(job.topic):
                continue
            if job.id in self._in_flight:
                continue
            self._in_flight.add(job.id)
            try:
                leased = await self.dispatch(job, owner=owner, lease_seconds=lease_seconds)
            finally:
                self._in_flight.discard(job.id)
            if leased is not None:
                got.append(leased)
                if len(got) >= max_jobs:
                    break
        return got

    async def dispatch(self, job: Job, *, owner: str, lease_seconds: int) -> Job | None:
        """The dispatch gate for one queued job: lease it, deny it, or send it for approval."""
        contained = self.incidents.check(job.tenant, job.identity_id)
        if contained is not None:  # a kill switch comes before approvals and the policy
            verdict = self.incidents.verdict(contained, self.kernel.snapshot, "dispatch")
        else:
            approval = await self.store.latest_approval(job.id)
            if (
                approval is not None
                and approval.status == states.APPROVAL_APPROVED
                and self.approval_key is not None
            ):
                return await self._dispatch_approved(job, approval, owner=owner, lease_seconds=lease_seconds)
            verdict = await self.kernel.decide(job_context(job), stage="dispatch")
            if verdict.fail_mode_applied and verdict.result != "allow":
                # Fail closed at dispatch means "not now", not "never": the job stays queued and
                # is retried with backoff; it is never handed out undecided.
                _, delay = self._retry_at.get(job.id, (0.0, 0.125))
                delay = min(delay * 2, 5.0)
                self._retry_at[job.id] = (asyncio.get_running_loop().time() + delay, delay)
                return None
            self._retry_at.pop(job.id, None)
        record = make_record(
            verdict, stage="dispatch", job_id=job.id, tenant=job.tenant, job_hash=job.job_hash
        )
        return await self._apply(job, verdict, record, owner=owner, lease_seconds=lease_seconds)

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
            self.metrics.approval_event("stale" if stale is not None else "requested")
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
        assert self.approval_key is not None
        at = now()
        problem = token_problem(approval.token, job, self.approval_key.verify_key, now=at)
        if problem is not None:
            event = "approval_expire" if problem == "expired" else "dispatch_deny"
            record = approval_record(
                job,
                approval,
                result="deny",
                event=problem,
                stage="dispatch",
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
                approval=ApprovalUpdate(approval.id, "lapse" if problem == "expired" else "void"),
            )
            if moved is not None:
                self.metrics.jobs_finished.labels(moved.status).inc()
            return None
        same_policy = approval.policy_snapshot == self.kernel.snapshot
        # On the snapshot it was given for, the approval answers the rule that asked for it; on a
        # newer one, the job is judged afresh, as if never approved.
        verdict = await self.kernel.decide(job_context(job, approved=same_policy), stage="dispatch")
        if verdict.fail_mode_applied and verdict.result != "allow":
            return None
        if same_policy and verdict.result == "require_approval":
            verdict = Verdict(
                decision=Decision("allow", approval.rule_id, f"approved by {approval.approver_id}"),
                snapshot=verdict.snapshot,
                cached=verdict.cached,
            )
        record = make_record(
            verdict,
            stage="dispatch",
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

    async def _leased_job(self, owner: str, job_id: str, tenant: str | None) -> Job:
        job = await self.store.get_job(job_id, tenant)
        if job is None:
            raise NotFound(f"no job `{job_id}`", code="job_not_found")
        if job.lease_owner != owner or job.status not in (states.DISPATCHED, states.RUNNING):
            raise Conflict(
                f"job `{job_id}` is not leased to this worker (it is `{job.status}`)",
                code="not_lease_holder",
                details={"status": job.status},
            )
        return job

    async def heartbeat(
        self, *, owner: str, job_id: str, lease_seconds: int, tenant: str | None = None
    ) -> Job:
        """Mark the job running (first call) and extend its lease."""
        job = await self._leased_job(owner, job_id, tenant)
        at = now()
        moved: Job | None
        if job.status == states.DISPATCHED:
            moved = await self.store.transition(
                job_id, "start", at=at, changes=JobChanges(lease_expires_at=at + lease_seconds)
            )
        else:
            moved = await self.store.extend_lease(job_id, owner, at + lease_seconds, at=at)
        if moved is None:
            raise Conflict(f"job `{job_id}` changed state", code="invalid_state")
        return moved

    async def finish(
        self,
        *,
        owner: str,
        job_id: str,
        status: str,
        output: Any,
        error: str | None = None,
        tenant: str | None = None,
    ) -> Job:
        job = await self._leased_job(owner, job_id, tenant)
        # The output gate first: what the worker produced is judged before anything is stored.
        judged = self.outputs.judge(job, status=status, output=output, error=error)
        moved = await self.store.transition(
            job.id, judged.event, record=judged.record, at=now(), changes=JobChanges(**judged.fields)
        )
        if moved is None:
            raise Conflict(f"job `{job_id}` changed state", code="invalid_state")
        self.metrics.jobs_finished.labels(moved.status).inc()
        return moved

    async def expire_leases(self) -> int:
        """Put jobs whose lease ran out back in the queue (or give up after too many tries)."""
        count = 0
        for job in await self.store.expired_leases(now()):
            # The lease that expired was counted when it was handed out: the count stays.
            if job.attempts >= self.settings.max_lease_attempts:
                moved = await self.store.transition(
                    job.id,
                    "give_up",
                    at=now(),
                    changes=JobChanges(
                        lease_owner=None, lease_expires_at=None, error="lease expired too many times"
                    ),
                )
            else:
                moved = await self.store.transition(
                    job.id,
                    "lease_expire",
                    at=now(),
                    changes=JobChanges(lease_owner=None, lease_expires_at=None),
                )
                if moved is not None:
                    await self.bus.publish("jobs.queued", {"job_id": job.id, "topic": job.topic})
            count += moved is not None
        return count

    async def run_maintenance(self) -> None:
        current_actor.set("system:scheduler")
        while True:
            try:
                await self.expire_leases()
                if self.approval_flow is not None:
                    await self.approval_flow.expire_overdue()
            except Exception:
                log.exception("maintenance pass failed")
            await asyncio.sleep(self.settings.maintenance_interval)

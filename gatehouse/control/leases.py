"""Leases: workers take queued jobs through the dispatch gate, keep them alive, report results.

A job leaves the queue only through `lease`, and only after the dispatch gate has judged it
(`control/dispatch.py`). A lease that runs out puts the job back in the queue, until it has
been handed out too many times. A result passes the output gate before the job reaches a
terminal state, in the same transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from gatehouse.bus.subjects import JOBS_QUEUED
from gatehouse.control.deps import Deps
from gatehouse.control.dispatch import DispatchGate
from gatehouse.control.lookup import moved_or_conflict, require_job
from gatehouse.control.outputs import OutputGate
from gatehouse.domain import states
from gatehouse.domain.changes import JobChanges
from gatehouse.domain.identity import Identity
from gatehouse.domain.ids import now
from gatehouse.domain.jobs import Job
from gatehouse.errors import BadRequest, Conflict
from gatehouse.policy import compile_glob
from gatehouse.policy.glob import GlobError, TopicGlob

__all__ = ["Leases"]


def _prefix(pattern: str) -> str:
    g = compile_glob(pattern)
    if g.kind == "exact":
        return pattern
    return ".".join(g.prefix) + "." if g.prefix else ""


class Leases:
    def __init__(self, *, deps: Deps, dispatch: DispatchGate, outputs: OutputGate) -> None:
        self.store = deps.store
        self.bus = deps.bus
        self.metrics = deps.metrics
        self.settings = deps.settings
        self.dispatch = dispatch
        self.outputs = outputs
        self._waiters: list[asyncio.Future[None]] = []
        # Jobs this process is judging at the dispatch gate right now. Several lease loops (the
        # built-in workers, concurrent lease calls) scan the same queue, and a job's move out of
        # `queued` commits only at the next turn of the loop: without this, each would judge the
        # same job, count a dispatch decision for it, and all but one lose the compare-and-set.
        self._in_flight: set[str] = set()

    async def on_queued(self, _: dict[str, Any]) -> None:
        """The `jobs.queued` handler: wake up the lease calls waiting for work."""
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
        globs: Sequence[TopicGlob],
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
            if self.dispatch.backing_off(job.id, clock):
                continue
            if worker is not None and not worker.may_use_topic(job.topic):
                continue
            if job.id in self._in_flight:
                continue
            self._in_flight.add(job.id)
            try:
                leased = await self.dispatch.dispatch(job, owner=owner, lease_seconds=lease_seconds)
            finally:
                self._in_flight.discard(job.id)
            if leased is not None:
                got.append(leased)
                if len(got) >= max_jobs:
                    break
        return got

    async def _leased_job(self, owner: str, job_id: str, tenant: str | None) -> Job:
        job = await require_job(self.store, job_id, tenant)
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
        return moved_or_conflict(moved, job_id)

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
        moved = moved_or_conflict(
            await self.store.transition(
                job.id, judged.event, record=judged.record, at=now(), changes=JobChanges(**judged.fields)
            ),
            job_id,
        )
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
                    await self.bus.publish(JOBS_QUEUED, {"job_id": job.id, "topic": job.topic})
            count += moved is not None
        return count

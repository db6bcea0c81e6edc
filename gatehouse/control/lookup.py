"""The two answers every service gives the same way: "no such job" and "it moved under us"."""

from __future__ import annotations

from typing import Any

from gatehouse.domain.jobs import Job
from gatehouse.errors import Conflict, NotFound
from gatehouse.store import Store

__all__ = ["job_not_found", "moved_or_conflict", "require_job"]


def job_not_found(job_id: str) -> NotFound:
    # A job of another tenant is "not found" too: its existence is not the caller's business.
    return NotFound(f"no job `{job_id}`", code="job_not_found")


async def require_job(store: Store, job_id: str, tenant: str | None) -> Job:
    """The job `job_id` of `tenant` (any tenant if None), or 404."""
    job = await store.get_job(job_id, tenant)
    if job is None:
        raise job_not_found(job_id)
    return job


def moved_or_conflict(
    moved: Job | None,
    job_id: str,
    *,
    code: str = "invalid_state",
    message: str | None = None,
    details: Any = None,
) -> Job:
    """The job a compare-and-set transition returned, or 409 when it refused (the job was not
    in a state the event leaves from: somebody else moved it first)."""
    if moved is None:
        raise Conflict(message or f"job `{job_id}` changed state", code=code, details=details)
    return moved

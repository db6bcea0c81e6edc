"""Built-in workers: they serve `job.demo.**` so the quickstart works with nothing else running.

They take the same path as external workers (lease through the dispatch gate, report through
the result path); only the HTTP hop is skipped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from gatehouse.audit.events import current_actor
from gatehouse.control.leases import Leases
from gatehouse.domain.failures import handler_failed
from gatehouse.domain.jobs import Job

__all__ = ["BUILTIN_OWNER", "echo", "run_builtin_worker"]

log = logging.getLogger("gatehouse.worker")
BUILTIN_OWNER = "builtin-worker"


def echo(job: Job) -> dict[str, Any]:
    """The demo handler: echo the prompt back."""
    return {"echo": job.prompt, "topic": job.topic}


async def run_builtin_worker(leases: Leases, topics: Sequence[str], index: int) -> None:
    owner = f"{BUILTIN_OWNER}-{index}"
    current_actor.set(owner)
    while True:
        try:
            jobs = await leases.lease(
                owner=owner, topics=topics, max_jobs=16, lease_seconds=30, wait_seconds=1.0
            )
            for job in jobs:
                try:
                    output = echo(job)
                except Exception as exc:
                    # Reported like an external worker's failure: an error id, never the traceback.
                    failure = handler_failed(log, job.id, exc)
                    await leases.finish(
                        owner=owner,
                        job_id=job.id,
                        status="failed",
                        output=failure.output(),
                        error=failure.message,
                    )
                    continue
                await leases.finish(owner=owner, job_id=job.id, status="succeeded", output=output)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("built-in worker %s failed a pass", owner)
            await asyncio.sleep(0.5)

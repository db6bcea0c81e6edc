"""The built-in demo workers report a handler failure as an error id, like `gatehouse worker`."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from gatehouse.control import builtin
from gatehouse.domain.jobs import Job


class _Scheduler:
    """Leases one job, then nothing; records what the worker reports."""

    def __init__(self, job: Job) -> None:
        self.jobs = [job]
        self.finished: list[dict[str, Any]] = []
        self.done = asyncio.Event()

    async def lease(self, **_: Any) -> list[Job]:
        jobs, self.jobs = self.jobs, []
        if not jobs:
            await asyncio.sleep(0.01)
        return jobs

    async def finish(self, **report: Any) -> None:
        self.finished.append(report)
        self.done.set()


def _job() -> Job:
    return Job(
        id="job_1",
        tenant="default",
        identity_id="idn_1",
        topic="job.demo.echo",
        prompt="hi",
        labels={},
        meta={},
        status="dispatched",
        job_hash="h",
        created_at=0.0,
        updated_at=0.0,
    )


def test_a_failing_demo_handler_reports_an_error_id_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(job: Job) -> dict[str, Any]:
        raise RuntimeError("secret s3cr3t in /srv/worker/handler.py")

    async def run() -> _Scheduler:
        scheduler = _Scheduler(_job())
        task = asyncio.create_task(builtin.run_builtin_worker(scheduler, ["job.demo.**"], 0))  # type: ignore[arg-type]
        try:
            await asyncio.wait_for(scheduler.done.wait(), 5)
        finally:
            task.cancel()
        return scheduler

    monkeypatch.setattr(builtin, "echo", boom)
    with caplog.at_level(logging.ERROR, logger="gatehouse.worker"):
        scheduler = asyncio.run(run())
    [report] = scheduler.finished
    assert (report["job_id"], report["status"]) == ("job_1", "failed")
    error = report["output"]["error"]
    assert error["code"] == "handler_error"
    assert report["error"] == error["message"] == f"handler failed (error id {error['error_id']})"
    assert "s3cr3t" not in str(report) and "Traceback" not in str(report)
    # The log keeps the exception under the same id.
    [record] = [r for r in caplog.records if error["error_id"] in r.getMessage()]
    assert record.exc_info is not None and "s3cr3t" in str(record.exc_info[1])

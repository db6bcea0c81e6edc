"""A worker handler's exception reaches the agent as a short error with an id, never a traceback:
its text can hold paths, hosts and secrets. The worker's own log keeps the traceback under the id."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from harness import Server

SECRET = "hunter2-db-password"


def test_a_handler_exception_reaches_the_agent_as_an_error_id(server: Server, tmp_path: Path) -> None:
    (tmp_path / "failing_handlers.py").write_text(
        "def connect(job):\n"
        f"    raise ConnectionError('cannot reach postgres://admin:{SECRET}@db.internal/prod')\n"
    )
    agent = server.identity("err-agent", roles=["agent"], topics=["job.err.**"])
    worker = server.identity("err-worker", roles=["worker"], topics=["job.err.**"])
    with server.client(agent["api_key"]) as c:
        job_id = c.post("/api/v1/jobs", json={"topic": "job.err.connect", "prompt": "go"}).json()["job_id"]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gatehouse",
            "worker",
            "--url",
            server.url,
            "--key",
            worker["api_key"],
            "--topics",
            "job.err.**",
            "--handler",
            "failing_handlers:connect",
            "--once",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])),
        },
    )
    assert proc.returncode == 0, proc.stderr
    job = server.wait_status(job_id, {"failed"}, key=agent["api_key"])
    assert job["status"] == "failed"
    # What the agent reads: a code, a fixed message, an id. No exception text, no traceback, no path.
    error = job["result"]["error"]
    assert error["code"] == "handler_error"
    assert re.fullmatch(r"err_[0-9a-f]+", error["error_id"])
    assert error["message"] == f"handler failed (error id {error['error_id']})"
    assert job["error"] == error["message"]
    seen = str(job)
    for leak in ("Traceback", SECRET, "ConnectionError", "failing_handlers", str(tmp_path), ".py"):
        assert leak not in seen, leak
    # The worker's log has the whole story under that id, for whoever runs the worker.
    logged = proc.stderr[proc.stderr.index(error["error_id"]) :]
    assert "Traceback" in logged and SECRET in logged


def test_a_handler_longer_than_its_lease_keeps_the_job(server: Server, tmp_path: Path) -> None:
    # A lease of 2 s and a handler of 6 s: without renewals the server hands the job out again
    # (to this worker's next lease, or another's) and refuses this worker's result.
    (tmp_path / "slow_handlers.py").write_text(
        "import time\n\ndef slow(job):\n    time.sleep(6)\n    return 'done'\n"
    )
    agent = server.identity("lease-agent", roles=["agent"], topics=["job.slowlease.**"])
    worker = server.identity("lease-worker", roles=["worker"], topics=["job.slowlease.**"])
    with server.client(agent["api_key"]) as c:
        job_id = c.post("/api/v1/jobs", json={"topic": "job.slowlease.run", "prompt": "go"}).json()["job_id"]
    proc = subprocess.run(
        [sys.executable, "-m", "gatehouse", "worker", "--url", server.url, "--key", worker["api_key"],
         "--topics", "job.slowlease.**", "--handler", "slow_handlers:slow", "--lease-seconds", "2", "--once"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={**os.environ,
             "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "refused" not in proc.stderr and "not renewed" not in proc.stderr, proc.stderr
    job = server.wait_status(job_id, {"succeeded"}, key=agent["api_key"])
    assert job["result"] == "done" or job["result"]["output"] == "done", job
    assert job["attempts"] == 1  # leased once: never handed out again

"""The kernel as its own process: kill it under load and watch the fail modes hold."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from harness import ADMIN_KEY, SEED


class KernelProcess:
    def __init__(self, socket_path: Path, log: Path) -> None:
        self.socket_path = socket_path
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gatehouse", "kernel", "--socket", str(self.socket_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 15
        while not self.socket_path.exists():
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.05)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()
        self.socket_path.unlink(missing_ok=True)


@pytest.fixture
def kernel_proc(tmp_path: Path):
    k = KernelProcess(tmp_path / "kernel.sock", tmp_path / "kernel.log")
    k.start()
    yield k
    if k.proc and k.proc.poll() is None:
        k.kill()


def _metric(server, name: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in httpx.get(server.metrics_url).text.splitlines()
        if line.startswith(name)
    )


# The floods below measure fail modes, not the token buckets: a fast machine submits past the
# default identity rate (200/s) one request at a time.
UNLIMITED = ("--rate-limit-identity", "0", "--rate-limit-tenant", "0")


def _flood(url: str, topic: str, seconds: float, results: list) -> None:
    with httpx.Client(base_url=url, headers={"X-API-Key": ADMIN_KEY}, timeout=10) as c:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            r = c.post("/api/v1/jobs", json={"topic": topic})
            results.append((r.status_code, r.json()))


def test_closed_mode_never_dispatches_undecided_and_resumes(server_factory, kernel_proc, tmp_path) -> None:
    s = server_factory(SEED, "--kernel-socket", str(kernel_proc.socket_path), *UNLIMITED)
    worker = s.identity("kw", roles=["worker"], topics=["job.work.**"])
    with s.admin() as admin:
        queued = [admin.post("/api/v1/jobs", json={"topic": "job.work.x"}).json() for _ in range(10)]
        assert all(q["status"] == "queued" for q in queued)
    results: list = []
    flood = threading.Thread(target=_flood, args=(s.url, "job.work.y", 2.0, results))
    flood.start()
    time.sleep(0.5)
    kernel_proc.kill()
    flood.join()
    during = [body for status, body in results if status == 403]
    assert during, "some submits must have met the dead kernel"
    assert all(b["decision"]["reason"] == "kernel_unavailable" for b in during)
    assert all(b["decision"]["fail_mode_applied"] for b in during)
    with s.client(worker["api_key"]) as w:
        got = w.post("/api/v1/worker/lease", json={"topics": ["job.work.**"], "max_jobs": 100}).json()
        assert got["jobs"] == []  # closed: nothing leaves the queue undecided
    with s.admin() as admin:
        for q in queued:
            assert admin.get(f"/api/v1/jobs/{q['job_id']}").json()["status"] == "queued"
    assert _metric(s, "gatehouse_kernel_unavailable_total") >= len(during)

    kernel_proc.start()
    leased: list[str] = []
    with s.client(worker["api_key"]) as w:
        deadline = time.monotonic() + 15
        while len(leased) < len(queued) and time.monotonic() < deadline:
            jobs = w.post("/api/v1/worker/lease", json={"topics": ["job.work.x"], "max_jobs": 100}).json()[
                "jobs"
            ]
            leased += [j["job_id"] for j in jobs]
            time.sleep(0.1)
    assert sorted(leased) == sorted(q["job_id"] for q in queued)
    with s.admin() as admin:
        for job_id in leased:
            ds = admin.get(f"/api/v1/jobs/{job_id}/decisions").json()["decisions"]
            dispatch = [d for d in ds if d["stage"] == "dispatch"]
            assert len(dispatch) == 1 and dispatch[0]["fail_mode_applied"] is False
            assert dispatch[0]["result"] == "allow"
        assert admin.post("/api/v1/jobs", json={"topic": "job.work.z"}).status_code == 201


def test_open_mode_allows_and_counts_every_fail_open(server_factory, kernel_proc, tmp_path) -> None:
    policy = tmp_path / "open.yaml"
    policy.write_text(SEED.read_text())  # job.demo.** fails open in the seed policy
    s = server_factory(policy, "--kernel-socket", str(kernel_proc.socket_path), *UNLIMITED)
    kernel_proc.kill()
    results: list = []
    _flood(s.url, "job.demo.open", 1.0, results)
    assert results and all(status == 201 for status, _ in results), [r for r in results if r[0] != 201][:3]
    assert all(b["decision"]["fail_mode_applied"] for _, b in results)
    opened = _metric(s, 'gatehouse_input_fail_open_total{stage="submit"}')
    assert opened == len(results)
    # A topic without the override still fails closed.
    with s.admin() as admin:
        r = admin.post("/api/v1/jobs", json={"topic": "job.other.closed"})
        assert r.status_code == 403 and r.json()["decision"]["reason"] == "kernel_unavailable"
    # After the kernel returns, decisions are real again.
    kernel_proc.start()
    time.sleep(0.3)
    with s.admin() as admin:
        r = admin.post("/api/v1/jobs", json={"topic": "job.demo.open"})
        assert r.status_code == 201 and r.json()["decision"]["fail_mode_applied"] is False
        job = s.wait_status(results[0][1]["job_id"], {"succeeded"})
        assert job["status"] == "succeeded"


def _readyz_until(s, status: str, timeout: float = 10.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        r = httpx.get(s.url + "/readyz", timeout=5)
        if r.json()["status"] == status or time.monotonic() > deadline:
            return r
        time.sleep(0.1)


def test_readyz_is_503_while_the_kernel_process_is_down_and_serve_says_so(
    server_factory, kernel_proc
) -> None:
    s = server_factory(SEED, "--kernel-socket", str(kernel_proc.socket_path))
    r = httpx.get(s.url + "/readyz")
    assert r.status_code == 200 and r.json()["status"] == "ready", r.text
    kernel_proc.kill()
    # No submit in between: the probe itself, and the dropped connection, notice it.
    r = _readyz_until(s, "kernel_unavailable")
    assert r.status_code == 503, r.text
    assert r.json()["status"] == "kernel_unavailable"
    assert "unreachable" in r.json()["reason"]
    assert r.json()["policy_snapshot"]
    deadline = time.monotonic() + 5
    while "kernel process" not in s.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    [warning] = [line for line in s.log().splitlines() if "is unreachable" in line]
    assert "WARNING" in warning and str(kernel_proc.socket_path) in warning
    kernel_proc.start()
    r = _readyz_until(s, "ready")
    assert r.status_code == 200 and r.json()["status"] == "ready", r.text

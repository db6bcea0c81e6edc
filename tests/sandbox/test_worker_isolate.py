"""`gatehouse worker --isolate`, driven as a user would: a real `gatehouse serve`, jobs submitted
over HTTP, and the worker CLI running a handler written for the test that tries to read the
server's data directory and key files, reach a loopback listener the test runs, and write
outside /tmp. Isolated, each attempt fails from the inside and the job still completes with
what happened recorded; a handler that raises or outlives its wall-clock bound fails cleanly.
Unisolated, the same handler succeeds at every attempt: that is what the sandbox takes away.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import SEED, Server

from gatehouse.sandbox import Sandboxes

HANDLERS = """
import ctypes, errno, json, os, socket, time

def _syscalls():
    # In a child, so that what succeeds changes nothing of the caller.
    libc = ctypes.CDLL(None, use_errno=True)
    def call(name, *args):
        ok = getattr(libc, name)(*args) == 0
        return "ok" if ok else errno.errorcode.get(ctypes.get_errno(), "?")
    r, w = os.pipe()
    if os.fork() == 0:
        seen = {"ptrace": call("ptrace", 0, 0, 0, 0), "unshare": call("unshare", 0x10000000)}
        os.write(w, json.dumps(seen).encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        return json.loads(f.read())

def _try(fn):
    try:
        return "ok: " + str(fn())
    except BaseException as exc:
        return "failed: " + type(exc).__name__

def attempts(job):
    a = json.loads(job["prompt"])
    def write(path):
        with open(path, "w") as f:
            f.write("planted")
        return path
    def connect():
        with socket.create_connection(("127.0.0.1", a["port"]), timeout=3) as s:
            return s.recv(100).decode()
    return {
        "read_key": _try(lambda: len(open(a["key"], "rb").read())),
        "read_db": _try(lambda: len(open(a["db"], "rb").read(100))),
        "list_data": _try(lambda: len(os.listdir(a["data"]))),
        "connect": _try(connect),
        "write_outside": _try(lambda: write(a["outside"])),
        "write_data": _try(lambda: write(a["planted"])),
        "write_tmp": _try(lambda: write("/tmp/scratch")),
        "api_key_in_env": any("GATEHOUSE" in k for k in os.environ),
        "syscalls": _syscalls(),
    }

def boom(job):
    raise ValueError("the handler broke")

def linger(job):
    time.sleep(120)
    return "never"
"""


@functools.cache
def _problem() -> str | None:
    return Sandboxes().available()


needs_bwrap = pytest.mark.skipif(
    _problem() is not None, reason=f"bubblewrap cannot sandbox on this machine: {_problem()}"
)


Setup = tuple[Server, Path, dict[str, Any], dict[str, Any]]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("isolate")
    code = tmp / "code"
    code.mkdir()
    (code / "attempt_handlers.py").write_text(HANDLERS)
    s = Server(data_dir=tmp / "data", policy=SEED).start()
    agent = s.identity("iso-agent", roles=["agent"], topics=["job.iso.**"])
    worker = s.identity("iso-worker", roles=["worker"], topics=["job.iso.**"])
    yield s, code, agent, worker
    s.stop()


def submit(server: Server, agent: dict[str, Any], topic: str, prompt: str = "go") -> str:
    with server.client(agent["api_key"]) as c:
        r = c.post("/api/v1/jobs", json={"topic": topic, "prompt": prompt})
        assert r.status_code in (200, 201, 202), r.text
        return str(r.json()["job_id"])


def run_worker(server: Server, code: Path, worker: dict[str, Any], *flags: str,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    argv = [sys.executable, "-m", "gatehouse", "worker", "--url", server.url, "--key", worker["api_key"],
            "--topics", "job.iso.**", "--once",
            "--handler", "job.iso.attempt=attempt_handlers:attempts",
            "--handler", "job.iso.boom=attempt_handlers:boom",
            "--handler", "job.iso.linger=attempt_handlers:linger", *flags]  # fmt: skip
    return subprocess.run(
        argv,
        cwd=code,
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(code), os.environ.get("PYTHONPATH")])),
            "GATEHOUSE_DATA_DIR": str(server.data_dir),
            **(env or {}),
        },
    )


def attempt_prompt(server: Server, port: int, outside: Path) -> str:
    data = server.data_dir
    return json.dumps({
        "key": str(data / "keys" / "server.key"), "db": str(data / "gatehouse.db"), "data": str(data),
        "port": port, "outside": str(outside), "planted": str(data / "planted.txt"),
    })  # fmt: skip


@needs_bwrap
def test_an_isolated_handler_cannot_reach_the_data_dir_the_network_or_the_host_fs(
    setup: Setup, listener: int
) -> None:
    server, code, agent, worker = setup
    outside = Path("/var/tmp") / f"gatehouse-isolate-{uuid.uuid4().hex}"
    assert (server.data_dir / "keys" / "server.key").exists()
    prompt = attempt_prompt(server, listener, outside)
    isolated = submit(server, agent, "job.iso.attempt", prompt)
    boom = submit(server, agent, "job.iso.boom")
    linger = submit(server, agent, "job.iso.linger")
    proc = run_worker(server, code, worker, "--isolate", "--isolate-wall-seconds", "4")
    assert proc.returncode == 0, proc.stderr

    job = server.wait_status(isolated, {"succeeded", "failed"}, key=agent["api_key"])
    assert job["status"] == "succeeded", job
    seen = job["result"]
    assert seen["read_key"] == seen["read_db"] == seen["list_data"] == "failed: FileNotFoundError", seen
    assert seen["connect"] in ("failed: ConnectionRefusedError", "failed: OSError"), seen
    assert seen["write_outside"].startswith("failed: "), seen
    assert seen["write_data"].startswith("failed: "), seen
    assert seen["write_tmp"] == "ok: /tmp/scratch"  # a private /tmp is the one place to write
    assert seen["api_key_in_env"] is False
    assert seen["syscalls"] == {"ptrace": "EPERM", "unshare": "EPERM"}  # the seccomp filter
    assert not outside.exists() and not (server.data_dir / "planted.txt").exists()

    # A handler that raises, and one that outlives its bound: each job fails cleanly, recorded.
    job = server.wait_status(boom, {"failed"}, key=agent["api_key"])
    assert job["result"]["error"]["code"] == "handler_error", job
    assert "the handler broke" not in str(job)
    job = server.wait_status(linger, {"failed"}, key=agent["api_key"])
    error = job["result"]["error"]
    assert error["code"] == "sandbox_killed" and error["reason"] == "wall_seconds", job
    logged = proc.stderr[proc.stderr.index(error["error_id"]) :]
    assert "wall_seconds" in logged


def test_without_isolate_the_same_handler_reaches_everything(setup: Setup, listener: int) -> None:
    server, code, agent, worker = setup
    outside = Path("/var/tmp") / f"gatehouse-isolate-{uuid.uuid4().hex}"
    job_id = submit(server, agent, "job.iso.attempt", attempt_prompt(server, listener, outside))
    try:
        proc = run_worker(server, code, worker)
        assert proc.returncode == 0, proc.stderr
        job = server.wait_status(job_id, {"succeeded", "failed"}, key=agent["api_key"])
        seen = job["result"]
        assert seen["read_key"].startswith("ok: ") and seen["read_db"].startswith("ok: "), seen
        assert seen["connect"] == "ok: hello from the host", seen
        assert seen["write_outside"] == f"ok: {outside}" and outside.read_text() == "planted"
        assert seen["syscalls"] == {"ptrace": "ok", "unshare": "ok"}
    finally:
        outside.unlink(missing_ok=True)
        (server.data_dir / "planted.txt").unlink(missing_ok=True)


@needs_bwrap
@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--isolate-read", "/tmp"], None),  # filled in below: the data directory
        (["--isolate", "--isolate-read", "relative/path"], "absolute host paths"),
        (["--isolate", "--isolate-read", "/"], "the root"),
        (["--isolate", "--isolate-memory", "lots"], "a size such as"),
        (["--isolate", "--isolate-network", "egress"], "needs `--isolate-egress`"),
        (["--isolate", "--isolate-egress", "https://example.com"], "needs `--isolate-network egress`"),
        (["--isolate", "--isolate-network", "egress", "--isolate-egress", "not a url"], "bad egress entry"),
        (["--isolate-write", "/srv"], "need --isolate"),
    ],
)
def test_bad_isolation_options_are_refused_before_any_job(
    setup: Setup, flags: list[str], says: str | None
) -> None:
    server, code, _, worker = setup
    if says is None:
        flags, says = ["--isolate", "--isolate-read", str(server.data_dir.parent)], "data directory"
    proc = run_worker(server, code, worker, *flags)
    assert proc.returncode in (1, 2)
    assert says in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_worker_that_cannot_sandbox_does_not_start(
    setup: Setup,
) -> None:
    server, code, agent, worker = setup
    job_id = submit(server, agent, "job.iso.attempt", "{}")
    proc = run_worker(
        server, code, worker, "--isolate", env={"GATEHOUSE_SANDBOX_BWRAP": "/nonexistent/bwrap"}
    )
    assert (
        proc.returncode == 1 and "cannot isolate handlers" in proc.stderr and "not installed" in proc.stderr
    )
    with server.client(agent["api_key"]) as c:
        assert c.get(f"/api/v1/jobs/{job_id}").json()["status"] not in ("succeeded", "failed", "running")

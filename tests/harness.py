"""The test harness: `Server` starts a real `gatehouse serve` process on free loopback ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "examples" / "policies" / "seed.yaml"
ADMIN_KEY = "ghk_test_admin_key_0123456789"


def gh(*args: object, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The `gatehouse` command of this interpreter, run from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", "gatehouse", *map(str, args)],
        capture_output=True,
        text=True,
        input=stdin,
        cwd=ROOT,
        timeout=60,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    data_dir: Path
    policy: Path | None
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    metrics_port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def start(self, timeout: float = 60.0) -> Server:
        self.port = free_port()
        self.metrics_port = free_port()
        args = [
            sys.executable,
            "-m",
            "gatehouse",
            "serve",
            "--port",
            str(self.port),
            "--metrics-port",
            str(self.metrics_port),
            "--data-dir",
            str(self.data_dir),
            "--log-level",
            "warning",
            *self.extra_args,
        ]
        if self.policy is not None:
            args += ["--policy", str(self.policy)]
        env = {**os.environ, "GATEHOUSE_ADMIN_KEY": ADMIN_KEY, **self.env}
        self.log_path = self.data_dir.parent / f"server-{self.port}.log"
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=0.5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not start:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def client(self, key: str = ADMIN_KEY, tenant: str | None = None) -> httpx.Client:
        headers = {"X-API-Key": key}
        if tenant:
            headers["X-Tenant-ID"] = tenant
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def admin(self) -> httpx.Client:
        return self.client(ADMIN_KEY)

    def identity(self, name: str, **body: Any) -> dict[str, Any]:
        with self.admin() as c:
            r = c.post("/api/v1/identities", json={"name": name, **body})
            assert r.status_code == 201, r.text
            return r.json()

    def wait_status(
        self,
        job_id: str,
        statuses: set[str],
        key: str = ADMIN_KEY,
        timeout: float = 10.0,
        tenant: str | None = None,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.client(key, tenant) as c:
            while True:
                job = c.get(f"/api/v1/jobs/{job_id}").json()
                if job.get("status") in statuses or time.monotonic() > deadline:
                    return job
                time.sleep(0.05)

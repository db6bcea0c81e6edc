"""Shared names of the MCP gateway tests (a module of its own: every test folder has a `conftest`)."""

from __future__ import annotations

import functools
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx

from gatehouse.policy.catalog import Sandbox
from gatehouse.sandbox import Sandboxes

HERE = Path(__file__).resolve().parent
ADMIN_KEY = "ghk_test_admin_key_mcp_0123456789"


@dataclass
class Gatehouse:
    url: str
    tmp: Path
    app: Any
    desc_file: Path
    pid_file: Path
    keys: dict[str, str] = field(default_factory=dict)

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"X-API-Key": ADMIN_KEY}, timeout=30)

    def identity(self, name: str, **body: Any) -> str:
        with self.admin() as c:
            r = c.post("/api/v1/identities", json={"name": name, **body})
            assert r.status_code == 201, r.text
            return str(r.json()["api_key"])


@functools.cache
def sandbox_problem() -> str | None:
    """Why bubblewrap cannot sandbox on this machine (None: it can), detected once."""
    return Sandboxes().available()


def sandbox_for(writable: Path) -> Sandbox:
    """The test upstream's sandbox: `writable` (its desc and pid files) writable; with no
    sandbox where bubblewrap cannot run (tests/sandbox proves the sandbox, not these)."""
    return Sandbox(write=(str(writable),)) if sandbox_problem() is None else Sandbox(enabled=False)


def sandbox_yaml(writable: Path) -> Any:
    return {"write": [str(writable)]} if sandbox_problem() is None else "none"


def upstream_pid(pid_file: Path, timeout: float = 20) -> int:
    """The host pid of the test upstream that wrote `pid_file` (inside a sandbox, the pid it
    writes is its own PID namespace's)."""
    mark = f"UPSTREAM_PID_FILE={pid_file}".encode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid_file.exists():
            for entry in os.listdir("/proc"):
                if not entry.isdigit():
                    continue
                try:
                    with open(f"/proc/{entry}/environ", "rb") as f:
                        env = f.read().split(b"\0")
                    with open(f"/proc/{entry}/cmdline", "rb") as f:
                        cmd = f.read()
                except OSError:
                    continue
                if mark in env and b"upstream_server.py" in cmd and b"init.py" not in cmd:
                    return int(entry)
        time.sleep(0.05)
    raise AssertionError(f"no upstream wrote {pid_file}")


def adapters_for(tmp: Path, desc: Path, pid: Path) -> dict[str, Any]:
    server = (sys.executable, str(HERE / "upstream_server.py"))
    env = (SimpleNamespace(name="UPSTREAM_DESC_FILE", value=str(desc), secret=None),
           SimpleNamespace(name="UPSTREAM_PID_FILE", value=str(pid), secret=None))  # fmt: skip
    notes = SimpleNamespace(name="notes", kind="mcp", command=server, env=env, url=None, credential=None,
                            sandbox=sandbox_for(desc.parent))  # fmt: skip
    return {"notes": notes}

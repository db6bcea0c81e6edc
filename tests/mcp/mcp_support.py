"""Shared names of the MCP gateway tests (a module of its own: every test folder has a `conftest`)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx

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


def adapters_for(tmp: Path, desc: Path, pid: Path) -> dict[str, Any]:
    server = (sys.executable, str(HERE / "upstream_server.py"))
    env = (SimpleNamespace(name="UPSTREAM_DESC_FILE", value=str(desc), secret=None),
           SimpleNamespace(name="UPSTREAM_PID_FILE", value=str(pid), secret=None))  # fmt: skip
    notes = SimpleNamespace(name="notes", kind="mcp", command=server, env=env, url=None, credential=None)
    return {"notes": notes}

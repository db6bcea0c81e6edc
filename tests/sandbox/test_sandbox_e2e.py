"""Sandboxed MCP upstreams, driven as a user would: a real `gatehouse serve` fronting
`jailbreak_server.py`, which tries from inside its tool calls to read Gatehouse's data directory
and keys, list the host's processes, reach a loopback listener, fork-bomb, allocate past its
memory limit and spin past its CPU time. Each attempt fails, the server is contained or killed
as declared, Gatehouse stays healthy, and the kills are audited. On a machine where bubblewrap
cannot run the positive tests skip (saying why); the fail-closed test runs everywhere.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
import yaml
from harness import Server
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client

from gatehouse.sandbox import Sandboxes

HERE = Path(__file__).resolve().parent
SERVER = [sys.executable, str(HERE / "jailbreak_server.py")]

pytestmark = pytest.mark.anyio


@functools.cache
def _problem() -> str | None:
    return Sandboxes().available()


needs_bwrap = pytest.mark.skipif(
    _problem() is not None, reason=f"bubblewrap cannot sandbox on this machine: {_problem()}"
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _bundle(tmp: Path, adapters: dict[str, Any]) -> Path:
    body = {
        "version": 1, "name": "sandbox-tests", "default_decision": "deny", "adapters": adapters,
        "rules": [{"id": "allow-tools", "decision": "allow", "reason": "the attempts are the test",
                   "match": {"targets": ["adapter:*:*"]}}],
    }  # fmt: skip
    path = tmp / "bundle.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"page {self.server.server_address[1]}".encode()  # type: ignore[index]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def pages() -> Iterator[tuple[int, int]]:
    """Two loopback web servers: the `net` adapter may reach the first, not the second."""
    servers = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page) for _ in range(2)]
    for srv in servers:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield servers[0].server_address[1], servers[1].server_address[1]
    for srv in servers:
        srv.shutdown()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, pages: tuple[int, int]) -> Iterator[tuple[Server, Path]]:
    tmp = tmp_path_factory.mktemp("sandbox")
    (tmp / "work").mkdir()
    data = tmp / "data"
    adapters = {
        "jail": {"kind": "mcp", "command": SERVER,
                 "sandbox": {"write": [str(tmp / "work")], "memory": "512Mi", "cpu_seconds": 2,
                             "processes": 16, "wall_seconds": 600}},
        "brief": {"kind": "mcp", "command": SERVER, "sandbox": {"wall_seconds": 8}},
        "open": {"kind": "mcp", "command": SERVER, "sandbox": "none"},
        "net": {"kind": "mcp", "command": SERVER, "egress": [f"http://127.0.0.1:{pages[0]}"],
                "sandbox": {"network": "egress"}},
        # Declares the data directory: refused, so this one never starts.
        "peek": {"kind": "mcp", "command": SERVER, "sandbox": {"read": [str(tmp)]}},
    }  # fmt: skip
    s = Server(data_dir=data, policy=_bundle(tmp, adapters)).start()
    yield s, tmp
    s.stop()


@pytest.fixture(scope="module")
def agent(served: tuple[Server, Path]) -> str:
    return str(served[0].identity("jail-agent", roles=["agent"], adapters=["*:*"])["api_key"])


@asynccontextmanager
async def connect(server: Server, key: str, adapter: str) -> AsyncIterator[Client]:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=60)
    async with Client(streamable_http_client(f"{server.url}/mcp/{adapter}", http_client=http)) as c:
        yield c


async def attempt(
    server: Server, key: str, tool: str, adapter: str = "jail", **args: Any
) -> tuple[bool, str]:
    async with connect(server, key, adapter) as c:
        r = await c.call_tool(tool, args)
        return bool(r.is_error), "".join(getattr(x, "text", "") for x in r.content)


async def refused(server: Server, key: str, adapter: str) -> MCPError:
    """The JSON-RPC error a call to `adapter` answers (the SDK raises it inside a group)."""
    try:
        await attempt(server, key, "whoami", adapter=adapter)
    except BaseException as exc:  # the SDK raises it inside exception groups
        while isinstance(exc, BaseExceptionGroup):
            exc = exc.exceptions[0]
        assert isinstance(exc, MCPError), exc
        return exc
    raise AssertionError(f"a call to `{adapter}` was answered")


def audited(server: Server, reason: str, adapter: str = "jail", timeout: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with server.admin() as c:
            entries = c.get("/api/v1/audit", params={"stream": "system", "limit": 5000}).json()["entries"]
        for e in entries:
            data = e.get("data", {})
            if (
                e.get("type") == "sandbox.killed"
                and data.get("reason") == reason
                and data.get("adapter") == adapter
            ):
                return dict(data)
        time.sleep(0.2)
    raise AssertionError(f"no sandbox.killed `{reason}` audited for {adapter}")


def healthy(server: Server) -> None:
    with server.admin() as c:
        assert c.get("/healthz").status_code == 200


@needs_bwrap
async def test_data_directory_keys_and_the_rest_of_the_host_are_invisible(
    served: tuple[Server, Path], agent: str
) -> None:
    server, tmp = served
    key_file = tmp / "data" / "keys" / "server.key"
    assert key_file.exists()  # it is there on the host...
    for path in (key_file, tmp / "data" / "gatehouse.db", "/etc/shadow", str(Path.home() / ".bash_history")):
        error, out = await attempt(server, agent, "read", path=str(path))
        assert not error and out.startswith("failed: FileNotFoundError"), (path, out)  # ...not inside
    error, out = await attempt(server, agent, "list", path=str(tmp))
    assert out == "listed: work", out  # only the declared path of the whole test directory
    error, out = await attempt(server, agent, "write", path="/usr/owned")
    assert "Read-only file system" in out or "Permission denied" in out, out
    error, out = await attempt(server, agent, "write", path=str(tmp / "work" / "ok.txt"))
    assert out == "wrote" and (tmp / "work" / "ok.txt").read_text() == "owned\n"
    # Not even its own view of Gatehouse: no environment of the server, HOME a private /tmp.
    _, who = await attempt(server, agent, "whoami")
    assert "home=/tmp" in who, who


@needs_bwrap
async def test_host_processes_are_invisible(served: tuple[Server, Path], agent: str) -> None:
    server, _ = served
    _, out = await attempt(server, agent, "procs")
    count = int(out.split()[1].rstrip(":"))
    assert count <= 3, out  # bubblewrap's init and the server: Gatehouse is not there
    assert str(server.proc.pid) not in out.split(": ")[1].split(",") or server.proc.pid <= 3


@needs_bwrap
async def test_no_network_not_even_the_hosts_loopback(
    served: tuple[Server, Path], agent: str, listener: int
) -> None:
    server, _ = served
    with socket.create_connection(("127.0.0.1", listener), timeout=3) as s:
        assert s.recv(100) == b"hello from the host"  # the listener answers the host...
    _, out = await attempt(server, agent, "connect", port=listener)
    assert out.startswith("failed: ConnectionRefusedError"), out  # ...but not the sandbox


@needs_bwrap
async def test_egress_reaches_only_the_adapters_list_and_a_refusal_is_counted_and_audited(
    served: tuple[Server, Path], agent: str, pages: tuple[int, int]
) -> None:
    server, _ = served
    allowed, other = pages
    _, out = await attempt(server, agent, "fetch", adapter="net", url=f"http://127.0.0.1:{allowed}/")
    assert out == f"fetched: page {allowed}", out
    _, out = await attempt(server, agent, "fetch", adapter="net", url=f"http://127.0.0.1:{other}/")
    assert out.startswith("failed: HTTPError: HTTP Error 403"), out  # the proxy's refusal
    _, out = await attempt(server, agent, "connect", adapter="net", port=other)
    assert out.startswith("failed: ConnectionRefusedError"), out  # and no way around the proxy
    metrics = httpx2.get(server.metrics_url).text
    assert 'gatehouse_egress_denied_total{adapter="net"} 1.0' in metrics
    deadline = time.monotonic() + 15
    while True:
        with server.admin() as c:
            entries = c.get("/api/v1/audit", params={"stream": "system", "limit": 5000}).json()["entries"]
        denied = [e["data"] for e in entries if e.get("type") == "sandbox.egress_denied"]
        if denied or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(denied) == 1 and denied[0]["adapter"] == "net" and str(other) in denied[0]["message"], denied


@needs_bwrap
async def test_dangerous_system_calls_are_refused_by_the_seccomp_filter(
    served: tuple[Server, Path], agent: str
) -> None:
    server, _ = served
    _, out = await attempt(server, agent, "syscalls")
    assert json.loads(out) == {"ptrace": "EPERM", "unshare": "EPERM", "mount": "EPERM"}, out
    # The same calls from the same server unsandboxed: nothing refuses them there.
    _, out = await attempt(server, agent, "syscalls", adapter="open")
    seen = json.loads(out)
    assert seen["ptrace"] == "ok" and seen["unshare"] == "ok", seen
    if os.geteuid() == 0:
        assert seen["mount"] == "ENOENT", seen  # root may mount: only the path is missing


@needs_bwrap
async def test_memory_past_the_limit_fails_and_the_server_lives_on(
    served: tuple[Server, Path], agent: str
) -> None:
    server, _ = served
    _, out = await attempt(server, agent, "allocate", mb=1024)
    assert out.startswith("failed: MemoryError"), out
    error, out = await attempt(server, agent, "allocate", mb=16)
    assert not error and out == f"allocated {16 * 2**20}"


@needs_bwrap
async def test_a_fork_bomb_is_killed_and_audited(served: tuple[Server, Path], agent: str) -> None:
    server, _ = served
    error, out = await attempt(server, agent, "fork_bomb", n=3000)
    assert error and "forked 3000" not in out, out
    event = audited(server, "processes")
    assert event["limit"] == 16 and event["seen"] > 16
    healthy(server)
    # The next call starts a fresh server.
    error, out = await attempt(server, agent, "whoami")
    assert not error and out.startswith("uid="), out


@needs_bwrap
async def test_spinning_past_the_cpu_limit_is_killed_and_audited(
    served: tuple[Server, Path], agent: str
) -> None:
    server, _ = served
    started = time.monotonic()
    error, out = await attempt(server, agent, "spin")
    assert error and "spun" not in out, out
    assert time.monotonic() - started < 30
    audited(server, "cpu_seconds")
    healthy(server)


@needs_bwrap
async def test_a_server_past_its_wall_clock_bound_is_killed_and_audited(
    served: tuple[Server, Path], agent: str
) -> None:
    server, _ = served
    error, _ = await attempt(server, agent, "whoami", adapter="brief")
    assert not error
    event = audited(server, "wall_seconds", adapter="brief")
    assert event["limit"] == 8
    error, _ = await attempt(server, agent, "whoami", adapter="brief")  # restarted on use
    assert not error


@needs_bwrap
async def test_readiness_and_the_catalog_say_which_adapter_cannot_start_and_why(
    served: tuple[Server, Path], agent: str
) -> None:
    server, _ = served
    with server.admin() as c:
        ready = c.get("/readyz")
        shown = {a["name"]: a for a in c.get("/api/v1/adapters").json()["adapters"]}
    assert ready.status_code == 503 and ready.json()["status"] == "sandbox_unavailable"
    assert set(ready.json()["adapters"]) == {"peek"} and "data directory" in ready.json()["adapters"]["peek"]
    assert shown["jail"]["runtime"] == {"sandbox": "bubblewrap", "status": "available"}
    assert shown["open"]["runtime"] == {"sandbox": "none", "status": "available"}
    assert shown["open"]["sandbox"] == "none"
    assert shown["peek"]["runtime"]["status"] == "unavailable"
    error = await refused(server, agent, "peek")
    assert "data directory" in str(error) and error.error.data == {"code": "sandbox_unavailable"}
    error, _ = await attempt(server, agent, "whoami", adapter="open")
    assert not error
    assert "open runs WITHOUT a sandbox" in server.log()


def test_without_bubblewrap_sandboxed_adapters_fail_closed(tmp_path: Path) -> None:
    """Runs everywhere: a machine that cannot sandbox (here: no bubblewrap at that path)."""
    adapters = {
        "jail": {"kind": "mcp", "command": SERVER},
        "open": {"kind": "mcp", "command": SERVER, "sandbox": "none"},
    }
    s = Server(data_dir=tmp_path / "data", policy=_bundle(tmp_path, adapters),
               env={"GATEHOUSE_SANDBOX_BWRAP": "/nonexistent/bwrap"}).start()  # fmt: skip
    try:
        key = str(s.identity("a", roles=["agent"], adapters=["*:*"])["api_key"])
        with s.admin() as c:
            ready = c.get("/readyz")
            shown = {a["name"]: a for a in c.get("/api/v1/adapters").json()["adapters"]}
        assert ready.status_code == 503 and ready.json()["status"] == "sandbox_unavailable"
        assert "not installed" in ready.json()["adapters"]["jail"] and "open" not in ready.json()["adapters"]
        assert shown["jail"]["runtime"]["status"] == "unavailable"
        assert "bubblewrap" in shown["jail"]["runtime"]["reason"]

        async def calls() -> None:
            error = await refused(s, key, "jail")
            assert "not installed" in str(error) and error.error.data == {"code": "sandbox_unavailable"}
            error, out = await attempt(s, key, "whoami", adapter="open")
            assert not error and out.startswith("uid=")

        anyio.run(calls)
    finally:
        s.stop()

"""The MCP gateway end to end: a real `gatehouse serve` process (`tests/harness.py`) on a bundle
whose catalog declares a `kind: mcp` adapter (the test upstream, started over stdio by the
gateway), driven by the SDK's own client over streamable HTTP and through `gatehouse mcp proxy`
(spawned by the SDK's stdio client, as an MCP host would launch it), and by the `gatehouse mcp`
admin commands."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
import yaml
from harness import ADMIN_KEY, Server
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_support import sandbox_yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def bundle(tmp: Path, desc: Path, pid: Path) -> Path:
    """The test bundle with the upstream declared in its catalog, as a user writes it."""
    adapters = {
        "adapters": {
            "notes": {
                "kind": "mcp",
                "command": [sys.executable, str(HERE / "upstream_server.py")],
                "env": {"UPSTREAM_DESC_FILE": str(desc), "UPSTREAM_PID_FILE": str(pid)},
                "sandbox": sandbox_yaml(desc.parent),
                "actions": {
                    "notes_search": {"effect": "read", "output": "untrusted"},
                    "notes_write": {"effect": "write"},
                },
            }
        }
    }
    path = tmp / "bundle.yaml"
    # The catalog appended to the rules of the in-process tests.
    path.write_text((HERE / "policy.yaml").read_text() + "\n" + yaml.safe_dump(adapters, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    tmp = tmp_path_factory.mktemp("mcp-e2e")
    (tmp / "upstream").mkdir()
    desc = tmp / "upstream" / "desc.txt"
    s = Server(data_dir=tmp / "data", policy=bundle(tmp, desc, tmp / "upstream" / "upstream.pid")).start()
    yield s, desc
    s.stop()


@pytest.fixture(scope="module")
def server(served: tuple[Server, Path]) -> Server:
    return served[0]


def key_for(server: Server, name: str, **body: Any) -> str:
    body.setdefault("roles", ["agent"])
    return str(server.identity(name, **body)["api_key"])


def text(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


@asynccontextmanager
async def over_http(server: Server, key: str, *, mode: str = "legacy") -> AsyncIterator[Client]:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30)
    async with Client(streamable_http_client(f"{server.url}/mcp/notes", http_client=http), mode=mode) as c:
        yield c


def proxy_params(server: Server, key: str | None, *, session: str | None = None) -> StdioServerParameters:
    env = {"PYTHONPATH": os.environ.get("PYTHONPATH", str(ROOT))}
    if key is not None:
        env["GATEHOUSE_API_KEY"] = key
    args = ["-m", "gatehouse", "mcp", "proxy", "--url", server.url, "--adapter", "notes"]
    return StdioServerParameters(
        command=sys.executable, args=args + (["--session", session] if session else []), env=env
    )


@asynccontextmanager
async def over_proxy(server: Server, key: str, *, mode: str = "legacy") -> AsyncIterator[Client]:
    async with Client(proxy_params(server, key), mode=mode) as c:
        yield c


CONNECT = {"http": over_http, "proxy": over_proxy}


def approve(server: Server, approval_id: str, approver_key: str) -> httpx.Response:
    with server.client(approver_key) as c:
        return c.post(f"/api/v1/approvals/{approval_id}/approve", json={})


@pytest.mark.parametrize("via", ["http", "proxy"])
async def test_reads_denials_and_redaction(server: Server, via: str) -> None:
    key = key_for(server, f"e2e-agent-{via}", adapters=["notes:*"])
    async with CONNECT[via](server, key) as c:
        names = {t.name for t in (await c.list_tools()).tools}
        assert {"notes_search", "notes_write", "get_config"} <= names and "helper" not in names
        read = await c.call_tool("notes_search", {"query": f"from {via}"})
        assert not read.is_error and f"note 1 matches from {via}" in text(read)
        denied = await c.call_tool("notes_write", {"title": "the secret plan", "body": "x"})
        assert denied.is_error and "deny-secret-titles" in text(denied) and "dec_" in text(denied)
        config = await c.call_tool("get_config", {})
        assert "AKIAIOSFODNN7EXAMPLE" not in text(config) and "region=eu-west-1" in text(config)
        with pytest.raises(MCPError) as unlisted:
            await c.call_tool("helper", {})
        assert unlisted.value.error.data["code"] == "tool_description_flagged"


@pytest.mark.parametrize(("via", "mode"), [("http", "legacy"), ("proxy", "legacy"), ("proxy", "2026-07-28")])
async def test_an_approval_lets_the_identical_call_run_once(server: Server, via: str, mode: str) -> None:
    tag = f"{via}-{mode}"
    key = key_for(server, f"e2e-writer-{tag}", adapters=["notes:*"])
    approver = key_for(server, f"e2e-approver-{tag}", roles=["approver"])
    call = {"title": f"draft {tag}", "body": "hello"}
    async with CONNECT[via](server, key, mode=mode) as c:
        first = await c.call_tool("notes_write", call)
        assert first.is_error and "approval" in text(first)
        found = re.search(r"\(approval (\S+)\)", text(first))
        assert found is not None and found.group(1) != "None"
        approval_id = found.group(1)
        # The agent cannot approve its own call; another identity with the approver role can.
        assert approve(server, approval_id, key).status_code == 403
        r = approve(server, approval_id, approver)
        assert r.status_code == 200, r.text
        changed = await c.call_tool("notes_write", {**call, "body": "changed"})
        assert changed.is_error and "approval" in text(changed) and approval_id not in text(changed)
        same = await c.call_tool("notes_write", call)
        assert not same.is_error and f"wrote note draft {tag}" in text(same), text(same)
        again = await c.call_tool("notes_write", call)
        assert again.is_error and "approval" in text(again), "an approval runs the call once"
    with server.client(approver) as c:
        approval = c.get(f"/api/v1/approvals/{approval_id}").json()
        assert approval["kind"] == "step" and approval["target"] == "adapter:notes:notes_write"


@pytest.mark.parametrize("via", ["http", "proxy"])
async def test_a_tool_with_header_bound_params_is_called_by_a_modern_client(server: Server, via: str) -> None:
    # `lookup` declares its `region` as the `Mcp-Param-Region` header: the gateway refuses a
    # 2026-07-28 call whose header is missing or differs, so this passes only if the client (and,
    # through the proxy, the proxy's own client) sends the header the tool's schema asks for.
    key = key_for(server, f"e2e-lookup-{via}", adapters=["notes:*"])
    async with CONNECT[via](server, key, mode="2026-07-28") as c:
        assert "lookup" in {t.name for t in (await c.list_tools()).tools}
        for region in ("eu-west-1", "us-east-2"):
            found = await c.call_tool("lookup", {"region": region})
            assert not found.is_error and "called lookup" in text(found), text(found)


async def test_untrusted_read_then_its_value_written_needs_approval_through_the_proxy(server: Server) -> None:
    key = key_for(server, "e2e-provenance", adapters=["notes:*"])
    async with over_proxy(server, key) as c:
        read = await c.call_tool("notes_search", {"query": "report"})
        assert "attacker-drop-42@evil.example" in text(read)
        copied = await c.call_tool("notes_write", {"title": "todo", "body": "attacker-drop-42@evil.example"})
        assert copied.is_error and "approval" in text(copied)
    # Two proxy processes given one `--session` share its history (one reads, the other writes).
    async with (
        Client(proxy_params(server, key, session="shared-e2e-1")) as reader,
        Client(proxy_params(server, key, session="shared-e2e-1")) as writer,
        Client(proxy_params(server, key, session="shared-e2e-2")) as other,
    ):
        assert "attacker-drop-42" in text(await reader.call_tool("notes_search", {"query": "r"}))
        body = {"title": "todo", "body": "attacker-drop-42@evil.example"}
        assert "approval" in text(await writer.call_tool("notes_write", body))
        assert not (await other.call_tool("notes_write", body)).is_error


async def test_proxy_passes_a_refused_key_back_as_a_json_rpc_error(server: Server) -> None:
    error: BaseException | None = None
    try:
        async with Client(proxy_params(server, "ghk_not_a_key"), mode="legacy"):
            pass
    except BaseException as exc:  # the SDK wraps it in exception groups
        error = exc
        while isinstance(error, BaseExceptionGroup):
            error = error.exceptions[0]
    assert isinstance(error, MCPError) and error.error.data["code"] == "invalid_api_key"


INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "t", "version": "1"}}}  # fmt: skip


def test_proxy_bad_lines_no_key_and_no_gateway(server: Server) -> None:
    env = {k: v for k, v in os.environ.items() if k != "GATEHOUSE_API_KEY"}
    no_key = _gh(env, "mcp", "proxy", "--adapter", "notes", replace=True)
    assert no_key.returncode == 2 and "GATEHOUSE_API_KEY" in no_key.stderr
    # A line that is not JSON-RPC is answered with a parse error; the bridge goes on.
    lines = "this is not json\n" + json.dumps(INIT) + "\n"
    key = key_for(server, "e2e-proxy-lines", adapters=["notes:*"])
    ok = _gh(
        {"GATEHOUSE_API_KEY": key}, "mcp", "proxy", "--url", server.url, "--adapter", "notes", stdin=lines
    )
    answers = [json.loads(line) for line in ok.stdout.splitlines() if line.strip()]
    assert answers[0]["error"]["code"] == -32700 and answers[0]["id"] is None
    assert answers[1]["id"] == 1 and answers[1]["result"]["serverInfo"]["name"] == "gatehouse"
    nowhere = ("mcp", "proxy", "--url", "http://127.0.0.1:9", "--adapter", "notes")
    down = _gh({"GATEHOUSE_API_KEY": key}, *nowhere, stdin=json.dumps(INIT) + "\n")
    # No gateway: the request is answered with a JSON-RPC error saying so, not a dead pipe.
    assert down.returncode == 0 and "Traceback" not in down.stderr
    answered = json.loads(down.stdout)
    assert answered["id"] == 1 and answered["error"]["data"]["code"] == "gateway_unreachable"


def test_rug_pull_reviewed_and_pinned_with_the_cli(served: tuple[Server, Path]) -> None:
    server, desc = served
    agent = key_for(server, "e2e-pin-agent", adapters=["notes:*"])

    def listed() -> set[str]:
        async def names() -> set[str]:
            async with over_http(server, agent, mode="2026-07-28") as c:
                return {t.name for t in (await c.list_tools()).tools}

        return anyio.run(names)

    env = {"GATEHOUSE_URL": server.url, "GATEHOUSE_API_KEY": ADMIN_KEY}
    assert "notes_search" in listed()
    desc.write_text("Searches the notes, newest first.")
    try:
        assert "notes_search" not in listed()
        shown = _gh(env, "mcp", "tools", "notes")
        assert shown.returncode == 0, shown.stderr
        row = next(line for line in shown.stdout.splitlines() if line.startswith("notes_search "))
        assert "withheld" in row and "tool_definition_changed" in row
        digest = row.split()[-1]
        wrong = _gh(env, "mcp", "pin", "notes", "notes_search", "--digest", "0" * 64)
        assert wrong.returncode == 1 and "tool_definition_changed" in wrong.stderr
        assert "Traceback" not in wrong.stderr and "notes_search" not in listed()
        as_agent = _gh({**env, "GATEHOUSE_API_KEY": agent}, "mcp", "pin", "notes", "notes_search")
        assert as_agent.returncode == 1 and "403" in as_agent.stderr and "Traceback" not in as_agent.stderr
        pinned = _gh(env, "mcp", "pin", "notes", "notes_search", "--digest", digest)
        assert pinned.returncode == 0, pinned.stderr
        assert json.loads(pinned.stdout)["definition"]["description"] == "Searches the notes, newest first."
        assert "notes_search" in listed()
        unknown = _gh(env, "mcp", "pin", "notes", "no_such_tool")
        assert unknown.returncode == 1 and "tool_not_found" in unknown.stderr
        down = _gh({**env, "GATEHOUSE_URL": "http://127.0.0.1:9"}, "mcp", "tools", "notes")
        assert down.returncode == 3 and "cannot reach" in down.stderr and "Traceback" not in down.stderr
    finally:
        desc.unlink()
        _gh(env, "mcp", "pin", "notes", "notes_search")


def _gh(env: dict[str, str], *args: str, stdin: str = "", replace: bool = False) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "gatehouse", *args],
        capture_output=True,
        text=True,
        input=stdin,
        cwd=ROOT,
        timeout=60,
        env=env if replace else {**os.environ, **env},
    )

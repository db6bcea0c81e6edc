"""The MCP gateway with the broker, over HTTP against a real `gatehouse serve`: secrets injected
into a stdio server's environment (per tenant, by reference) and as the credential header of a
streamable-HTTP upstream (the client's own key never passed on, the credential never echoed back
to the agent), tokens minted per call for an upstream whose adapter says `mint: true`, `url:`
upstreams held to their adapter's `egress`, and containment of an adapter closing its sessions
and refusing new ones."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
import yaml
from harness import Server, free_port
from joserfc import jwt
from joserfc.jwk import KeySet
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp_support import sandbox_yaml, upstream_pid

HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def sent_headers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the HTTP upstream writes the `Authorization` each request brought it."""
    return tmp_path_factory.mktemp("mcp-upstream-headers") / "headers.log"


@pytest.fixture(scope="module")
def http_upstream(sent_headers: Path) -> Iterator[int]:
    """The test upstream as a streamable-HTTP server on loopback."""
    port = free_port()
    env = {**os.environ, "UPSTREAM_HEADERS_FILE": str(sent_headers)}
    proc = subprocess.Popen([sys.executable, str(HERE / "upstream_server.py"), "--http", str(port)], env=env)
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/mcp", timeout=0.5)
            break
        except httpx.HTTPError:
            assert time.monotonic() < deadline, "the HTTP upstream did not start"
            time.sleep(0.1)
    yield port
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def server(http_upstream: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    tmp = tmp_path_factory.mktemp("mcp-broker")
    (tmp / "upstream").mkdir()
    pid = tmp / "upstream" / "upstream.pid"
    upstream = [sys.executable, str(HERE / "upstream_server.py")]
    loopback = f"http://127.0.0.1:{http_upstream}"
    catalog = {
        "adapters": {
            "notes": {"kind": "mcp", "command": upstream,
                      "env": {"UPSTREAM_PID_FILE": str(pid), "NOTES_TOKEN": {"secret": "notes_token"}},
                      "sandbox": sandbox_yaml(pid.parent)},
            "remote": {"kind": "mcp", "url": f"{loopback}/mcp", "egress": [loopback],
                       "credential": {"secret": "remote_token", "header": "Authorization",
                                      "format": "Bearer {secret}"}},
            "minted": {"kind": "mcp", "url": f"{loopback}/mcp", "egress": [loopback],
                       "credential": {"mint": True, "audience": "notes-api", "ttl": "10m"}},
            # Named by host: `localhost` resolves to loopback, which no entry names.
            "sneaky": {"kind": "mcp", "url": f"http://localhost:{http_upstream}/mcp",
                       "egress": [f"http://localhost:{http_upstream}"], "credential": {"mint": True}},
        }
    }  # fmt: skip
    bundle = tmp / "bundle.yaml"
    bundle.write_text((HERE / "policy.yaml").read_text() + "\n" + yaml.safe_dump(catalog, sort_keys=False))
    s = Server(data_dir=tmp / "data", policy=bundle).start()
    yield s, pid
    s.stop()


def agent(server: Server, name: str, tenant: str = "default") -> str:
    return str(server.identity(name, tenant=tenant, roles=["agent"], adapters=["*:*"])["api_key"])


def admin_of(server: Server, tenant: str) -> str:
    return str(server.identity(f"admin-{tenant}", tenant=tenant, roles=["admin"])["api_key"])


def put_secret(server: Server, key: str, name: str, value: str) -> None:
    with server.client(key) as c:
        r = c.put(f"/api/v1/secrets/{name}", json={"value": value})
        assert r.status_code in (200, 201), r.text


@asynccontextmanager
async def connect(
    server: Server, key: str, adapter: str, mode: str = "legacy", session: str | None = None
) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {key}"}
    if session is not None:
        headers["X-Gatehouse-Session"] = session
    http = httpx2.AsyncClient(headers=headers, timeout=30)
    async with Client(
        streamable_http_client(f"{server.url}/mcp/{adapter}", http_client=http), mode=mode
    ) as c:
        yield c


def text(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


async def test_a_stdio_server_gets_its_tenants_secret_in_its_environment(server: tuple[Server, Path]) -> None:
    s, _ = server
    default_agent, acme_agent = agent(s, "sec-agent"), agent(s, "sec-agent-acme", tenant="acme")
    # Not set yet: the server cannot start, and the client is told which secret is missing.
    async with connect(s, acme_agent, "notes", mode="2026-07-28") as c:
        with pytest.raises(MCPError) as missing:
            await c.list_tools()
        assert "notes_token" in str(missing.value) and "acme" in str(missing.value)
    put_secret(s, s.identity("sec-admin", roles=["admin"])["api_key"], "notes_token", "tok-default-5150")
    put_secret(s, admin_of(s, "acme"), "notes_token", "tok-acme-8086")
    # The server has the tenant's secret; the agent it echoes it to sees it scrubbed (which also
    # proves the value: only the tenant's own secret is scrubbed from its server's answers).
    async with connect(s, default_agent, "notes") as c:
        assert text(await c.call_tool("env", {"name": "NOTES_TOKEN"})) == "[REDACTED]"
        assert text(await c.call_tool("env", {"name": "GATEHOUSE_ADMIN_KEY"})) == "<unset>"
    # Another tenant's calls reach a server of its own, with its own secret.
    async with connect(s, acme_agent, "notes") as c:
        assert text(await c.call_tool("env", {"name": "NOTES_TOKEN"})) == "[REDACTED]"
    with s.admin() as admin:
        listed = admin.get("/api/v1/secrets").text
        assert "tok-default-5150" not in listed and "tok-acme-8086" not in listed


async def test_an_http_upstream_gets_the_adapters_credential_never_the_clients_key(
    server: tuple[Server, Path], sent_headers: Path
) -> None:
    s, _ = server
    put_secret(s, s.identity("remote-admin", roles=["admin"])["api_key"], "remote_token", "up-token-2718")
    key = agent(s, "remote-agent")
    async with connect(s, key, "remote") as c:
        seen = text(await c.call_tool("headers", {}))
    # The upstream got the secret; the agent, to whom the upstream echoed it, did not.
    assert "call Bearer up-token-2718" in _sent(sent_headers)
    assert "authorization=[REDACTED]" in seen and "up-token-2718" not in seen
    assert key not in seen and "x-api-key=<none>" in seen


async def test_an_http_upstream_gets_a_token_minted_for_each_call(
    server: tuple[Server, Path], sent_headers: Path
) -> None:
    s, _ = server
    key = agent(s, "minted-agent")
    with s.client(key) as http:
        me = http.get("/api/v1/whoami").json()["id"]
        keys = KeySet.import_key_set(http.get("/.well-known/jwks.json").json())
    before = len(_sent(sent_headers))
    async with connect(s, key, "minted", mode="2026-07-28", session="ses-minted-1") as c:
        first = text(await c.call_tool("headers", {}))
        second = text(await c.call_tool("headers", {}))
    # The agent never sees a token, even from an upstream that echoes it.
    assert first == second == "authorization=[REDACTED] x-api-key=<none>"
    sent = _sent(sent_headers)[before:]
    calls = [line.removeprefix("call Bearer ") for line in sent if line.startswith("call ")]
    lists = [line.removeprefix("list Bearer ") for line in sent if line.startswith("list ")]
    assert len(calls) == 2 and lists, sent
    claims = [jwt.decode(token, keys, algorithms=["EdDSA"]).claims for token in calls]
    for c in claims:
        # Per call: the tool's target, the caller's session and identity, the adapter's audience.
        assert c["act"] == "adapter:minted:headers" and c["sid"] == "ses-minted-1"
        assert c["sub"] == me and c["aud"] == "notes-api" and c["exp"] - c["iat"] == 600
    assert claims[0]["jti"] != claims[1]["jti"]
    # A request of the protocol (the listing the gateway vets) names its method, no session.
    listed = jwt.decode(lists[-1], keys, algorithms=["EdDSA"]).claims
    assert listed["act"] == "adapter:minted:tools/list"
    assert listed["sid"] == "" and listed["sub"] == "gatehouse"
    # A client of a stateful revision: its calls carry its MCP session.
    before = len(_sent(sent_headers))
    async with connect(s, key, "minted") as c:
        assert text(await c.call_tool("headers", {})) == "authorization=[REDACTED] x-api-key=<none>"
    sent = _sent(sent_headers)[before:]
    stateful = [line.removeprefix("call Bearer ") for line in sent if line.startswith("call ")]
    assert jwt.decode(stateful[0], keys, algorithms=["EdDSA"]).claims["sid"].startswith("mcp:")
    with s.admin() as admin:
        assert admin.post("/api/v1/credentials/introspect", json={"token": calls[0]}).json()["active"]
        r = admin.post("/api/v1/credentials/revoke", json={"adapter": "minted"})
        assert r.status_code == 200, r.text
        assert not admin.post("/api/v1/credentials/introspect", json={"token": calls[1]}).json()["active"]
        audit = admin.get("/api/v1/audit", params={"limit": 5000}).text
        assert claims[1]["jti"] in audit and calls[1] not in audit


def _sent(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


async def test_an_http_upstream_outside_its_egress_is_never_reached(server: tuple[Server, Path]) -> None:
    s, _ = server
    key = agent(s, "sneaky-agent")
    async with connect(s, key, "sneaky", mode="2026-07-28") as c:
        with pytest.raises(MCPError) as refused:
            await c.list_tools()
    assert "egress" in str(refused.value).lower() or "loopback" in str(refused.value)
    metrics = httpx.get(s.metrics_url).text
    assert 'gatehouse_egress_denied_total{adapter="sneaky"}' in metrics
    # Its credential is minted per request, once the request passed egress: none was.
    assert 'gatehouse_credentials_issued_total{adapter="sneaky"}' not in metrics


async def test_containing_an_adapter_closes_its_sessions_and_refuses_new_ones(
    server: tuple[Server, Path],
) -> None:
    s, pid_file = server
    put_secret(s, s.identity("contain-admin", roles=["admin"])["api_key"], "notes_token", "tok-x")
    key = agent(s, "contain-agent")
    async with connect(s, key, "notes") as c:
        assert not (await c.call_tool("notes_search", {"query": "before"})).is_error
        pid = upstream_pid(pid_file)
        with s.admin() as admin:
            r = admin.post(
                "/api/v1/incidents/contain", json={"adapter": "notes", "reason": "tool misbehaving"}
            )
            assert r.status_code == 201, r.text
            incident = r.json()["id"]
        # The open session is closed and the upstream server stopped, without a request.
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(pid), "the contained adapter's server still runs"
        with pytest.raises(MCPError):
            await c.call_tool("notes_search", {"query": "after"})
    with s.client(key) as http:
        r = http.post(f"{s.url}/mcp/notes", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert r.status_code == 403 and r.json()["error"]["data"]["code"] == "adapter_contained"
        assert "tool misbehaving" in r.json()["error"]["message"]
    with s.admin() as admin:
        assert admin.post(f"/api/v1/incidents/{incident}/lift", json={}).status_code == 200
    async with connect(s, key, "notes") as c:
        assert not (await c.call_tool("notes_search", {"query": "lifted"})).is_error


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped) counts as stopped.
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return False

"""Bad input to the MCP gateway: each a JSON-RPC error (or a bounded answer), never a crash.

Raw HTTP for what no SDK client would send (garbage bodies, batches, unknown methods, huge
bodies), the SDK's client for an upstream that hangs or floods. After each abuse the gateway
still serves a normal call."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_support import Gatehouse

from gatehouse.mcp.gateway import _LIST_TTL
from gatehouse.mcp.upstream import Limits

pytestmark = pytest.mark.anyio

HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
MODERN = "2026-07-28"


def _body(r: httpx.Response) -> Any:
    """The JSON-RPC answer of a plain JSON or an SSE response."""
    if r.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:].strip() for line in r.text.splitlines() if line.startswith("data:")]
        return json.loads([d for d in data if d][-1])
    return r.json()


def _modern(method: str, params: dict[str, Any] | None = None, rid: Any = 1) -> dict[str, Any]:
    meta = {"io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"}}  # fmt: skip
    return {"jsonrpc": "2.0", "id": rid, "method": method, "params": {**(params or {}), "_meta": meta}}


def _post(
    gh: Gatehouse, key: str, body: Any, *, raw: bytes | None = None, method: str = "x"
) -> httpx.Response:
    headers = {
        **HEADERS,
        "Authorization": f"Bearer {key}",
        "MCP-Protocol-Version": MODERN,
        "Mcp-Method": method,
    }
    params = body.get("params") if isinstance(body, dict) else None
    named = [params.get(k) for k in ("name", "uri")] if isinstance(params, dict) else []
    if named and isinstance(named[0] or named[1], str):
        headers["Mcp-Name"] = str(named[0] or named[1])  # the revision checks it against the body
    content = raw if raw is not None else json.dumps(body).encode()
    return httpx.post(f"{gh.url}/mcp/notes", content=content, headers=headers, timeout=30)


def _still_serves(gh: Gatehouse, key: str) -> None:
    r = _post(gh, key, _modern("tools/call", {"name": "notes_search", "arguments": {"query": "ok"}}),
              method="tools/call")  # fmt: skip
    assert r.status_code == 200, r.text
    assert "note 1 matches ok" in json.dumps(_body(r))


def _is_rpc_error(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code < 500, (r.status_code, r.text)
    body = _body(r)
    assert isinstance(body, dict) and body.get("jsonrpc") == "2.0" and "error" in body, r.text
    error: dict[str, Any] = body["error"]
    assert isinstance(error.get("code"), int) and error.get("message")
    return error


def test_malformed_bodies_are_json_rpc_errors(gatehouse: Gatehouse) -> None:
    key = gatehouse.identity("bad-1", adapters=["notes:*"])
    for raw in (b"not json", b"{", b"", b"42", b'"a string"', b"null", b"\xff\xfe\x00",
                b'{"jsonrpc": "2.0"}', b'{"jsonrpc": "1.0", "id": 1, "method": "ping"}',
                b'{"jsonrpc": "2.0", "id": {"x": 1}, "method": "ping"}',
                b'{"jsonrpc": "2.0", "id": 1, "method": 7}'):  # fmt: skip
        _is_rpc_error(_post(gatehouse, key, None, raw=raw))
    # The same on the stateful path (no protocol header, no session).
    for raw in (b"not json", b"[]", b'{"jsonrpc": "2.0", "id": 1}'):
        r = httpx.post(f"{gatehouse.url}/mcp/notes", content=raw, timeout=30,
                       headers={**HEADERS, "Authorization": f"Bearer {key}"})  # fmt: skip
        _is_rpc_error(r)
    _still_serves(gatehouse, key)


def test_unknown_methods_and_bad_params_are_json_rpc_errors(gatehouse: Gatehouse) -> None:
    key = gatehouse.identity("bad-2", adapters=["notes:*"])
    for method in (
        "nope/nothing",
        "resources/read",
        "prompts/get",
        "sampling/createMessage",
        "tools/../list",
    ):
        error = _is_rpc_error(
            _post(gatehouse, key, _modern(method, {"uri": "file:///etc/passwd"}), method=method)
        )
        assert error["code"] in (-32601, -32602, -32600), error
    for params in ({"name": 7}, {"name": "notes_search", "arguments": "not an object"},
                   {"name": "notes_search", "arguments": {"query": json.loads("[" * 40 + "]" * 40)}},
                   {"arguments": {}}):  # fmt: skip
        _is_rpc_error(_post(gatehouse, key, _modern("tools/call", params), method="tools/call"))
    _still_serves(gatehouse, key)


def test_mcp_param_headers_are_checked_without_listing_the_upstream_per_call(gatehouse: Gatehouse) -> None:
    key = gatehouse.identity("bad-hdr", adapters=["notes:*"])
    listed = _body(_post(gatehouse, key, _modern("tools/list"), method="tools/list"))
    assert "lookup" in {t["name"] for t in listed["result"]["tools"]}
    lists = gatehouse.desc_file.parent / "lists.log"
    before = lists.read_text().count("list")

    def call(region: str, header: str | None) -> httpx.Response:
        body = _modern("tools/call", {"name": "lookup", "arguments": {"region": region}})
        extra = {"Mcp-Param-Region": header} if header is not None else {}
        headers = {**HEADERS, "Authorization": f"Bearer {key}", "MCP-Protocol-Version": MODERN,
                   "Mcp-Method": "tools/call", "Mcp-Name": "lookup", **extra}  # fmt: skip
        return httpx.post(f"{gatehouse.url}/mcp/notes", content=json.dumps(body), headers=headers, timeout=30)

    # A header that says another value than the body (an intermediary routing on it would be
    # misled) or that is missing is refused before the call; the matching one passes.
    for region, header in (("eu", "us"), ("eu", None)):
        r = call(region, header)
        assert r.status_code == 400 and "called lookup" not in r.text, r.text
        assert "Mcp-Param-Region" in _is_rpc_error(r)["message"]
    for _ in range(5):
        r = call("eu", "eu")
        assert r.status_code == 200 and "called lookup" in json.dumps(_body(r)), r.text
    # The header check used the definition the gateway vetted: no upstream tools/list per call.
    assert lists.read_text().count("list") == before


def test_calls_that_find_the_listing_stale_together_share_one_upstream_listing(gatehouse: Gatehouse) -> None:
    key = gatehouse.identity("herd", adapters=["notes:*"])
    _body(_post(gatehouse, key, _modern("tools/list"), method="tools/list"))
    lists = gatehouse.desc_file.parent / "lists.log"
    time.sleep(_LIST_TTL + 0.2)  # the gateway's vetted listing is stale now
    before = lists.read_text().count("list")
    slow = gatehouse.desc_file.parent / "list_delay"
    slow.write_text("0.5")  # a listing that takes a while: the calls all arrive during it

    def call(n: int) -> httpx.Response:
        body = _modern("tools/call", {"name": "notes_search", "arguments": {"query": f"herd {n}"}})
        return _post(gatehouse, key, body, method="tools/call")

    try:
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(call, range(8)))
    finally:
        slow.unlink()
    assert all("note 1 matches herd" in json.dumps(_body(r)) for r in answers)
    # Eight calls at once, one refresh of the listing between them (each listed it before).
    assert lists.read_text().count("list") - before == 1


def test_batches_and_huge_bodies_are_refused(gatehouse: Gatehouse) -> None:
    key = gatehouse.identity("bad-3", adapters=["notes:*"])
    one = _modern("tools/call", {"name": "notes_search", "arguments": {"query": "b"}})
    # Batches were removed from the protocol: a batch is one error, not N upstream calls.
    for batch in ([one] * 2, [one] * 5000, [{"jsonrpc": "2.0", "method": "ping"}] * 3):
        r = _post(gatehouse, key, batch, method="tools/call")
        assert r.status_code < 500 and "note 1 matches" not in r.text, r.text[:300]
    huge = json.dumps(
        _modern("tools/call", {"name": "notes_search", "arguments": {"query": "x" * (2 << 20)}})
    )
    r = _post(gatehouse, key, None, raw=huge.encode(), method="tools/call")
    assert r.status_code in (400, 413) and "note 1 matches" not in r.text
    deep = "[" * 100_000 + "]" * 100_000
    assert _post(gatehouse, key, None, raw=deep.encode()).status_code < 500
    _still_serves(gatehouse, key)


async def test_an_upstream_that_hangs_or_floods_is_bounded(gatehouse: Gatehouse) -> None:
    # Small bounds for this gateway, before its upstream starts.
    gatehouse.app.state.gateway.limits = Limits(call_seconds=1.5, max_result_bytes=64 * 1024)
    key = gatehouse.identity("bad-4", adapters=["notes:*"])
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30)
    async with Client(streamable_http_client(f"{gatehouse.url}/mcp/notes", http_client=http)) as c:
        hung = await c.call_tool("slow", {"seconds": 30})
        assert hung.is_error and "did not answer `slow` within 1.5s" in _text(hung)
        flood = await c.call_tool("flood", {"kb": 1024})
        assert flood.is_error and "at most 65536" in _text(flood)
        small = await c.call_tool("flood", {"kb": 1})
        assert not small.is_error and len(_text(small)) == 1024
        after = await c.call_tool("notes_search", {"query": "after"})
        assert not after.is_error and "after" in _text(after)


def _text(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)

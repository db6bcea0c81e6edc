"""`gatehouse mcp proxy`: a stdio MCP server that forwards everything to `/mcp/{adapter}`.

For clients that can only launch a command. It bridges the official SDK's two transports
message by message (`stdio_server` towards the client, `streamable_http_client` towards the
gateway) instead of re-implementing a server: every method, notification, server request
(URL elicitation on the stateful revisions) and response passes through unchanged, so the
client negotiates with the gateway itself and the proxy never has to know the protocol.

What the bridge adds is what the HTTP transport needs and a stdio client never says:
- the API key (`Authorization: Bearer`, from `$GATEHOUSE_API_KEY`) on every request, and the
  `X-Gatehouse-Session` it was given (`--session`);
- the `MCP-Protocol-Version` header: on the handshake revisions the version that the
  gateway's `initialize` answer negotiated, on 2026-07-28 the one in each request's envelope
  (with `Mcp-Method` and `Mcp-Name`, which that revision checks against the body);
- on 2026-07-28, the `Mcp-Param-*` headers of a `tools/call` whose tool declares arguments as
  headers (`x-mcp-header` in its input schema): the gateway refuses a call without them. The
  bridge learns the declarations from the `tools/list` answers it relays, as the SDK's own
  client does (a tool never listed through the bridge gets none, as there);
- a JSON-RPC parse error for a line that is not JSON-RPC (the client is answered, the bridge
  goes on).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import anyio
import httpx2
from mcp.client.streamable_http import streamable_http_client
from mcp.server.stdio import stdio_server
from mcp.shared.inbound import (
    MCP_METHOD_HEADER,
    MCP_NAME_HEADER,
    MCP_PROTOCOL_VERSION_HEADER,
    NAME_BEARING_METHODS,
    encode_header_value,
    find_invalid_x_mcp_header,
    mcp_param_headers,
    x_mcp_header_map,
)
from mcp.shared.message import ClientMessageMetadata, SessionMessage
from mcp_types import (
    INTERNAL_ERROR,
    PARSE_ERROR,
    PROTOCOL_VERSION_META_KEY,
    ErrorData,
    JSONRPCError,
    JSONRPCMessage,
    JSONRPCRequest,
    JSONRPCResponse,
)
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

__all__ = ["Bridge", "run_proxy"]

log = logging.getLogger("gatehouse.mcp.proxy")


class Bridge:
    """The header state of one bridged connection (which revision the client speaks)."""

    def __init__(self) -> None:
        self.handshake_version: str | None = None
        self._initialize_ids: set[Any] = set()
        self._open: set[Any] = set()  # ids of client requests not answered yet
        self._listing_ids: set[Any] = set()  # ids of client `tools/list` requests in flight
        # Per tool: its arguments declared as `Mcp-Param-*` headers (from the last listing).
        self.param_headers: dict[str, dict[tuple[str, ...], str]] = {}
        self.drained = anyio.Event()
        self.drained.set()

    def headers_for(self, message: JSONRPCMessage) -> dict[str, str] | None:
        """The per-message HTTP headers for a client message on its way to the gateway."""
        if isinstance(message, JSONRPCRequest):
            self._open.add(message.id)
            if self.drained.is_set():
                self.drained = anyio.Event()
        params = getattr(message, "params", None)
        meta = params.get("_meta") if isinstance(params, Mapping) else None
        version = meta.get(PROTOCOL_VERSION_META_KEY) if isinstance(meta, Mapping) else None
        if isinstance(message, JSONRPCRequest) and isinstance(version, str):
            # 2026-07-28: the envelope carries the version; the headers must repeat it.
            headers = {MCP_PROTOCOL_VERSION_HEADER: version, MCP_METHOD_HEADER: message.method}
            name_key = NAME_BEARING_METHODS.get(message.method)
            name = params.get(name_key) if name_key is not None and isinstance(params, Mapping) else None
            if isinstance(name, str):
                headers[MCP_NAME_HEADER] = encode_header_value(name)
            if message.method == "tools/list":
                self._listing_ids.add(message.id)
            elif message.method == "tools/call" and isinstance(name, str) and name in self.param_headers:
                arguments = params.get("arguments") if isinstance(params, Mapping) else None
                if isinstance(arguments, Mapping):
                    headers.update(mcp_param_headers(self.param_headers[name], arguments))
            return headers
        if isinstance(message, JSONRPCRequest) and message.method == "initialize":
            self._initialize_ids.add(message.id)
            self.handshake_version = None
            return None
        if self.handshake_version is not None:
            return {MCP_PROTOCOL_VERSION_HEADER: self.handshake_version}
        return None

    def observe(self, message: JSONRPCMessage) -> None:
        """Learn the negotiated version from the gateway's answer to `initialize`, and the tools'
        header declarations from its answers to `tools/list` (before the client sees either,
        so its next message already goes out with them)."""
        if isinstance(message, (JSONRPCResponse, JSONRPCError)) and message.id in self._listing_ids:
            self._listing_ids.discard(message.id)
            tools = message.result.get("tools") if isinstance(message, JSONRPCResponse) else None
            for tool in tools if isinstance(tools, list) else ():
                name = tool.get("name") if isinstance(tool, Mapping) else None
                if not isinstance(name, str):
                    continue
                schema = tool.get("inputSchema")
                if find_invalid_x_mcp_header(schema) is None:
                    self.param_headers[name] = x_mcp_header_map(schema)
                else:  # the client drops such a tool; no stale declaration is kept for it
                    self.param_headers.pop(name, None)
        if isinstance(message, JSONRPCResponse) and message.id in self._initialize_ids:
            self._initialize_ids.discard(message.id)
            version = message.result.get("protocolVersion") if isinstance(message.result, Mapping) else None
            if isinstance(version, str) and version in HANDSHAKE_PROTOCOL_VERSIONS:
                self.handshake_version = version

    def answered(self, message: JSONRPCMessage) -> None:
        """The client has the answer to one of its requests (after it was written to it)."""
        if isinstance(message, (JSONRPCResponse, JSONRPCError)) and message.id in self._open:
            self._open.discard(message.id)
            if not self._open:
                self.drained.set()


class _Unreachable(httpx2.AsyncBaseTransport):
    """A gateway that cannot be reached answers each request with a JSON-RPC error (the SDK's
    transport hands a JSON-RPC error body to the request it answers), so the client is told
    why and the bridge stays up for when the gateway is back."""

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        try:
            return await self.inner.handle_async_request(request)
        except httpx2.TransportError as exc:
            message = f"cannot reach Gatehouse at {request.url}: {exc}"[:500]
            error = {"code": INTERNAL_ERROR, "message": message, "data": {"code": "gateway_unreachable"}}
            return httpx2.Response(503, json={"jsonrpc": "2.0", "id": None, "error": error}, request=request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def _parse_error(exc: Exception) -> SessionMessage:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    error = ErrorData(code=PARSE_ERROR, message=f"not a JSON-RPC message: {text[:200]}")
    return SessionMessage(JSONRPCError(jsonrpc="2.0", id=None, error=error))


async def run_proxy(
    url: str,
    key: str,
    *,
    stdin: anyio.AsyncFile[str] | None = None,
    stdout: anyio.AsyncFile[str] | None = None,
    timeout: float = 300.0,
    session: str | None = None,
) -> None:
    """Serve MCP on stdin/stdout, forwarding every message to the gateway endpoint `url`.

    Returns when the client closes stdin. `timeout` bounds one gateway answer (a call that
    waits on its upstream for up to a minute must not be cut short by the bridge). `session`
    is sent as `X-Gatehouse-Session`, so that several connections share one step-gate session.
    """
    bridge = Bridge()
    headers = {"Authorization": f"Bearer {key}"}
    if session:
        headers["X-Gatehouse-Session"] = session
    http = httpx2.AsyncClient(
        headers=headers,
        timeout=httpx2.Timeout(30.0, read=timeout),
        transport=_Unreachable(httpx2.AsyncHTTPTransport()),
    )
    async with (
        http,
        stdio_server(stdin, stdout) as (down_read, down_write),
        down_write,  # closed on the way out, or the stdio writer waits for more forever
        streamable_http_client(url, http_client=http) as (up_read, up_write),
        anyio.create_task_group() as tg,
    ):

        async def to_gateway() -> None:
            async for item in down_read:
                if isinstance(item, Exception):
                    await down_write.send(_parse_error(item))
                    continue
                headers = bridge.headers_for(item.message)
                await up_write.send(
                    SessionMessage(item.message, metadata=ClientMessageMetadata(headers=headers))
                )
            # The client closed stdin: answer what it asked (bounded), then end the session
            # (the transport ends it upstream too).
            with anyio.move_on_after(timeout):
                await bridge.drained.wait()
            tg.cancel_scope.cancel()

        async def to_client() -> None:
            async for item in up_read:
                if isinstance(item, Exception):
                    log.warning("gateway stream: %s", item)
                    continue
                bridge.observe(item.message)
                await down_write.send(SessionMessage(item.message))
                bridge.answered(item.message)

        tg.start_soon(to_gateway)
        tg.start_soon(to_client)

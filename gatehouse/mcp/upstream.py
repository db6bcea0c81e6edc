"""Upstream MCP servers, reached with the official SDK's client.

`Upstream` keeps one client open per adapter and shares it between every gateway session: a
stdio server Gatehouse starts (`StdioSpec`: only PATH, HOME and the adapter's `env:` in its
environment, through `gatehouse.mcp.launch`) or a streamable-HTTP server (`HttpSpec`: the
adapter's headers, its credential among them; never the gateway client's own token).

The client lives in a task of its own (the SDK's transports are context managers that must be
left by the task that entered them), which reopens it when the server dies, with a backoff;
`close` stops it and with it the server process. Every call is bounded in time (`Limits`), and
a result larger than `Limits.max_result_bytes` is refused, so an upstream that hangs or floods
costs a bounded wait, never the gateway.

`call_tool(..., call=UpstreamCall(...))` names the gated call the request carries: an HTTP
upstream whose credential is minted per call (`HttpSpec.credential`) reads it back from
`current_call()` while the SDK sends that request (the SDK runs a request's POST in the context
of the task that sent it), and records in it the credential values it sent, for the gateway to
scrub from the answer. Requests made outside a call (the handshake, `tools/list`, the SSE
stream) see None.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from gatehouse.broker.egress import EgressDenied, EgressEntry
from gatehouse.crypto import canonical
from gatehouse.errors import GatehouseError
from gatehouse.mcp import launch
from gatehouse.mcp.egress import EgressTransport
from gatehouse.mcp.launch import ENV_NAMES
from gatehouse.sandbox.runtime import CONFIG_ENV, Launch

__all__ = ["HttpSpec", "Limits", "StdioSpec", "Upstream", "UpstreamCall", "UpstreamError", "current_call"]

log = logging.getLogger("gatehouse.mcp")

_BASE_ENV = ("PATH", "HOME")


class UpstreamError(GatehouseError):
    """The upstream could not answer (not running, timed out, closed, too large)."""

    code = "upstream_error"


@dataclass(frozen=True, slots=True)
class Limits:
    start_seconds: float = 30.0
    list_seconds: float = 15.0
    call_seconds: float = 60.0
    max_result_bytes: int = 4 * 1024 * 1024
    max_tools: int = 1000


@dataclass(frozen=True, slots=True)
class StdioSpec:
    command: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)  # secrets already revealed
    cwd: str | None = None
    # Sandboxed (`gatehouse.sandbox`): the supervisor runs the command in bubblewrap; None is
    # an adapter with `sandbox: none`.
    launch: Launch | None = None
    # Called each time the server's process has ended (the sandbox's events are read then).
    on_exit: Callable[[], Awaitable[Any]] | None = field(default=None, compare=False)
    # The secrets' values in `env`: scrubbed from answers.
    secrets: tuple[str, ...] = field(default=(), repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class HttpSpec:
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)  # the adapter's credential among them
    egress: tuple[EgressEntry, ...] = ()  # every request checked against it (none: none passes)
    on_denied: Callable[[str, EgressDenied], None] | None = field(default=None, compare=False)
    # Headers made for each request once it passed `egress` (a credential minted per call).
    credential: Callable[[httpx2.Request], Awaitable[Mapping[str, str]]] | None = field(
        default=None, compare=False
    )
    # Credential values in `headers` (the secret, the header made of it): scrubbed from answers.
    secrets: tuple[str, ...] = field(default=(), repr=False, compare=False)


@dataclass(slots=True)
class UpstreamCall:
    """The gated tool call an upstream request is made for."""

    tool: str
    session_id: str
    identity_id: str
    sent: list[str] = field(default_factory=list)  # credential values sent for it (to scrub)


_CALL: ContextVar[UpstreamCall | None] = ContextVar("gatehouse_mcp_upstream_call", default=None)


def current_call() -> UpstreamCall | None:
    """The call whose request is being sent, or None (a request of the protocol itself)."""
    return _CALL.get()


def _stdio_params(spec: StdioSpec) -> StdioServerParameters:
    env = {k: os.environ[k] for k in _BASE_ENV if k in os.environ}
    env.update(spec.env)
    if spec.launch is not None:
        env.update(spec.launch.env)
        env[ENV_NAMES] = ",".join(sorted(env))
        # The supervisor reads its bounds from CONFIG_ENV and passes on only ENV_NAMES.
        env[CONFIG_ENV] = spec.launch.config
        argv = spec.launch.argv
        return StdioServerParameters(command=argv[0], args=list(argv[1:]), env=env, cwd=spec.cwd)
    env[ENV_NAMES] = ",".join(sorted(env))
    # By path and isolated (-I): the launcher needs nothing of the gateway's PYTHONPATH or site.
    return StdioServerParameters(
        command=sys.executable,
        args=["-I", str(Path(launch.__file__)), *spec.command],
        env=env,
        cwd=spec.cwd,
    )


def _client(name: str, spec: StdioSpec | HttpSpec, limits: Limits) -> Client:
    if isinstance(spec, StdioSpec):
        return Client(_stdio_params(spec), mode="legacy", cache=None)
    transport = EgressTransport(name, spec.egress, on_denied=spec.on_denied, credential=spec.credential)
    http = httpx2.AsyncClient(headers=dict(spec.headers), timeout=limits.call_seconds, transport=transport)
    return Client(streamable_http_client(spec.url, http_client=http), mode="auto", cache=None)


def _alive(client: Client) -> bool:
    # The SDK's dispatcher marks itself closed when the transport reaches EOF (the server
    # process died, the HTTP stream ended); no public accessor says so yet.
    dispatcher = getattr(client.session, "_dispatcher", None)
    return not bool(getattr(dispatcher, "_closed", False))


def _describe(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"[:500]


class Upstream:
    """One upstream MCP server, opened on first use and reopened after it dies."""

    def __init__(self, name: str, spec: StdioSpec | HttpSpec, *, limits: Limits | None = None) -> None:
        self.name = name
        self.spec = spec
        self.limits = limits or Limits()
        self.starts = 0
        self._client: Client | None = None
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._error: str | None = None
        self.failures = 0

    @property
    def error(self) -> str | None:
        """Why the upstream is not running, when it is not."""
        return self._error

    async def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            self._lost.clear()
            try:
                async with _client(self.name, self.spec, self.limits) as client:
                    self.starts += 1
                    self._client, self._error, backoff = client, None, 0.1
                    self._ready.set()
                    while not self._stop.is_set() and not self._lost.is_set() and _alive(client):
                        with suppress(TimeoutError):
                            await asyncio.wait_for(self._lost.wait(), 0.5)
            except Exception as exc:  # the server failed to start or broke: retried below
                self._error = _describe(exc)
                self.failures += 1
                log.warning("MCP upstream %s: %s", self.name, self._error)
            finally:
                self._client = None
                self._ready.clear()
                on_exit = getattr(self.spec, "on_exit", None)
                if on_exit is not None:
                    with suppress(Exception):
                        await on_exit()
            if not self._stop.is_set():
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), backoff)
                backoff = min(backoff * 2, 5.0)

    async def _session(self) -> Client:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"mcp-upstream-{self.name}")
        client = self._client
        if client is not None and _alive(client):
            return client
        if client is not None:
            self._lost.set()
        failures = self.failures
        deadline = asyncio.get_running_loop().time() + self.limits.start_seconds
        # Until it is ready, a failed attempt to start, or the deadline: a server that cannot
        # start answers at once, not after the whole start allowance.
        while self._client is None:
            if self.failures > failures or asyncio.get_running_loop().time() > deadline:
                raise UpstreamError(
                    f"MCP upstream `{self.name}` is not running: {self._error or 'it did not start in time'}"
                )
            with suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), 0.1)
        return self._client

    async def list_tools(self) -> list[dict[str, Any]]:
        """Every tool the upstream offers now, as wire dicts (pages followed, bounded)."""
        for attempt in (1, 2):
            client = await self._session()
            try:
                tools: list[dict[str, Any]] = []
                cursor: str | None = None
                with anyio.fail_after(self.limits.list_seconds):
                    while True:
                        page = await client.list_tools(cursor=cursor, cache_mode="bypass")
                        tools += [
                            t.model_dump(by_alias=True, mode="json", exclude_none=True) for t in page.tools
                        ]
                        cursor = page.next_cursor
                        if cursor is None or len(tools) >= self.limits.max_tools:
                            return tools[: self.limits.max_tools]
            except TimeoutError:
                raise UpstreamError(f"MCP upstream `{self.name}` did not list its tools in time") from None
            except MCPError as exc:
                # Listing is idempotent: a server that died under us is restarted and asked again.
                if attempt == 1 and not _alive(client):
                    self._lost.set()
                    continue
                raise UpstreamError(f"MCP upstream `{self.name}` failed to list tools: {exc}") from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def call_tool(
        self, name: str, arguments: dict[str, Any], *, call: UpstreamCall | None = None
    ) -> dict[str, Any]:
        """The upstream's wire `CallToolResult`; `UpstreamError` when it cannot give one."""
        client = await self._session()
        # Set only now: the client's own task (started above, when it was not running yet)
        # must not inherit a call.
        token = _CALL.set(call)
        try:
            with anyio.fail_after(self.limits.call_seconds):
                result = await client.session.call_tool(name, arguments)
        except TimeoutError:
            raise UpstreamError(
                f"MCP upstream `{self.name}` did not answer `{name}` within {self.limits.call_seconds:g}s"
            ) from None
        except MCPError as exc:
            if not _alive(client):
                self._lost.set()
            raise UpstreamError(f"MCP upstream `{self.name}` failed `{name}`: {exc}") from None
        finally:
            _CALL.reset(token)
        wire: dict[str, Any] = result.model_dump(by_alias=True, mode="json", exclude_none=True)
        size = len(canonical(wire))
        if size > self.limits.max_result_bytes:
            raise UpstreamError(
                f"MCP upstream `{self.name}` answered `{name}` with {size} bytes "
                f"(at most {self.limits.max_result_bytes})"
            )
        return wire

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 10)
            except (TimeoutError, Exception):
                self._task.cancel()
                with suppress(BaseException):
                    await self._task
            self._task = None

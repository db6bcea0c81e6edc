"""The MCP gateway: `/mcp/{adapter}` as a streamable-HTTP MCP server on the official SDK.

One low-level SDK `Server` and one `StreamableHTTPSessionManager` serve every adapter: stateful
sessions (`Mcp-Session-Id`, SSE) for clients of the handshake revisions, and the stateless
2026-07-28 revision, which the manager routes by its protocol header. Before the SDK sees a
request, `asgi` authenticates it (`Authorization: Bearer <api key>` or `X-API-Key`), checks
that the adapter is an `mcp` adapter of the bundle, and stamps the caller on the ASGI scope:
as the SDK's authenticated user (so a session id only serves the identity, tenant and adapter
that opened it, and a sealed `requestState` only the principal it was minted for) and for the
handlers, which read it back from `ctx.request`.

- `tools/list` (`_list_tools`): the upstream's tools, vetted (`mcp.tools`: pinned, unflagged,
  no collisions), narrowed to the identity's adapter scope.
- `tools/call` (`_call_tool`): a listed tool only; the step gate on `adapter:<adapter>:<tool>`
  with the arguments as params, in the request's session (`mcp.sessions`); then the upstream,
  then the output gate (`StepGate.result`, which keeps the output for provenance). Deny and
  approval answer with a tool result the model can read (`isError`), or an elicitation.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio
import mcp_types as types
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.lowlevel import Server
from mcp.server.request_state import RequestStateBoundary, RequestStateSecurity
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, INVALID_REQUEST
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from prometheus_client import Counter
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from gatehouse import __version__
from gatehouse.audit.events import SYSTEM, AuditEvent
from gatehouse.broker.credentials import Minted
from gatehouse.broker.requests import Scrubber
from gatehouse.control.auth import Authenticator, Principal
from gatehouse.control.steps import StepGate
from gatehouse.crypto import canonical
from gatehouse.domain.ids import new_id, now
from gatehouse.domain.steps import target_of
from gatehouse.errors import GatehouseError, NotFound
from gatehouse.kernel import Kernel
from gatehouse.mcp.sessions import SessionMap
from gatehouse.mcp.tools import ToolVetting, Vetted
from gatehouse.mcp.upstream import (
    HttpSpec,
    Limits,
    StdioSpec,
    Upstream,
    UpstreamCall,
    UpstreamError,
    current_call,
)
from gatehouse.metrics import Metrics
from gatehouse.policy import ALLOW, DENY
from gatehouse.policy.catalog import Sandbox
from gatehouse.sandbox import SandboxError, Sandboxes
from gatehouse.store import Store

__all__ = ["Gateway", "McpCaller"]

log = logging.getLogger("gatehouse.mcp")

_SCOPE_KEY = "gatehouse.mcp"
# The caller of the request being served, for the SDK's synchronous schema lookup (which is
# given a tool name only).
_CALLER: ContextVar[McpCaller | None] = ContextVar("gatehouse_mcp_caller", default=None)
# A vetted listing is reused by calls for this long; `tools/list` always asks the upstream.
_LIST_TTL = 2.0
_APPROVAL = "require_approval"
_MAX_TRACKED_SESSIONS = 10_000


@dataclass(frozen=True, slots=True)
class McpCaller:
    principal: Principal
    adapter: str


def _rpc_error(status: int, code: str, message: str) -> JSONResponse:
    body = {"jsonrpc": "2.0", "id": None,
            "error": {"code": INVALID_REQUEST, "message": message, "data": {"code": code}}}  # fmt: skip
    return JSONResponse(body, status_code=status)


def _text_result(text: str, *, error: bool, meta: dict[str, Any] | None = None) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)], is_error=error, _meta=meta or None
    )


def _protocol_method(request: Any) -> str:
    """The JSON-RPC method a request to an upstream carries (`mcp` when it carries none: the SSE
    stream's GET, the DELETE that ends a session, a batch)."""
    try:
        body = json.loads(request.content) if request.method == "POST" else None
    except (ValueError, RuntimeError):  # not JSON, or a stream not read yet
        body = None
    method = body.get("method") if isinstance(body, dict) else None
    return method if isinstance(method, str) and method else "mcp"


def _args_hash(arguments: Any) -> str:
    return hashlib.sha256(canonical(arguments)).hexdigest()


class Gateway:
    def __init__(
        self,
        *,
        store: Store,
        kernel: Kernel,
        metrics: Metrics,
        auth: Authenticator,
        steps: StepGate,
        reveal: Callable[[str, str], Awaitable[str]] | None = None,
        contained: Callable[[str], Any | None] | None = None,
        limits: Limits | None = None,
        public_url: str | None = None,
        adapters: Callable[[str], Any | None] | None = None,
        sandboxes: Sandboxes | None = None,
        mint: Callable[..., Awaitable[Minted]] | None = None,
    ) -> None:
        self.store = store
        # Issues a token for one request to an upstream whose adapter says `credential.mint`.
        self.mint = mint
        self.kernel = kernel
        self.auth = auth
        self.steps = steps
        # (tenant, name) -> a stored secret's value: for upstreams that take one.
        self.reveal = reveal
        # adapter -> the containment in force for it (or None): refuses, closes sessions.
        self.contained = contained or (lambda name: None)
        self.metrics = metrics
        self.limits = limits or Limits()
        self.public_url = public_url
        # Where adapters come from: the bundle's catalog, unless a caller supplies another source.
        self._lookup = adapters or self._catalog_adapter
        # Where stdio upstreams run: each in its own sandbox unless its adapter says `sandbox: none`.
        self.sandboxes = sandboxes or Sandboxes()
        self.sandboxes.on_event = self._sandbox_event
        self.sandboxes.on_egress_denied = self._sandbox_egress_denied
        self._unsandboxed_warned: set[str] = set()
        self._background: set[Any] = set()
        self.vetting = ToolVetting(store=store, metrics=metrics, classifier=lambda: kernel.classifier)
        self.sessions = SessionMap()
        self.calls_total = Counter(
            "gatehouse_mcp_calls_total",
            "MCP tools/call requests by adapter and answer",
            ["adapter", "answer"],
            registry=metrics.registry,
        )
        # One upstream per tenant and adapter: a tenant's secrets reach only its own server
        # process, and what a stdio server keeps in memory is never shared across tenants.
        self._upstreams: dict[tuple[str, str], tuple[Any, Upstream]] = {}
        self._listings: dict[tuple[str, str], tuple[float, list[dict[str, Any]]]] = {}
        self._refreshing: dict[tuple[str, str], asyncio.Future[list[dict[str, Any]]]] = {}
        # Stateful MCP sessions by adapter (session id -> adapter), so containment closes them.
        self._sessions: dict[str, str] = {}
        # The definitions last vetted per (tenant, adapter): what the schema lookup answers.
        self._vetted: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        self.server: Server[Any] = Server(
            "gatehouse",
            version=__version__,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            # Without a lookup the SDK checks a tools/call's Mcp-Param-* headers against a
            # tools/list of its own, run through our handler, which lists the upstream afresh:
            # a second upstream round trip on every call (most of a call's time, measured).
            get_tool_input_schema=self._input_schema,
        )
        # requestState (2026-07-28) is sealed under a key of this process and bound by the SDK
        # to the tool, the arguments' digest and the principal (identity, tenant, adapter).
        self.server.middleware.append(
            RequestStateBoundary(
                RequestStateSecurity.ephemeral(ttl=3600, audience="gatehouse"),
                default_audience="gatehouse",
            )
        )
        self.manager = StreamableHTTPSessionManager(
            app=self.server,
            stateless=False,
            # Authentication is by API key on every request, so a page of another origin can
            # never call it with ambient credentials; the API's own host checks apply.
            security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
            max_request_body_size=1024 * 1024,
        )

    # lifecycle ----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        async with self.manager.run(), anyio.create_task_group() as tg:
            tg.start_soon(self._watch_containment)
            try:
                yield
            finally:
                tg.cancel_scope.cancel()
                for _, upstream in list(self._upstreams.values()):
                    await upstream.close()
                self._upstreams.clear()
                await self.sandboxes.close()

    async def _watch_containment(self) -> None:
        # Containment is decided elsewhere (an admin's call, perhaps to another replica): look
        # for it here, so a contained adapter's open sessions and servers stop within a second
        # even when none of its clients sends anything.
        while True:
            await anyio.sleep(0.5)
            live = {name for (_, name) in self._upstreams} | set(self._sessions.values())
            for name in live:
                if self.contained(name) is not None:
                    with contextlib.suppress(Exception):
                        await self.shut(name)

    async def shut(self, adapter: str) -> int:
        """Close every MCP session of `adapter` and stop its upstream servers (containment).
        Answers how many sessions were closed."""
        closed = 0
        # The SDK (2.3) has no public call to end one session: its manager's own discard does
        # what a client's DELETE does (forgotten at once, then the transport terminated).
        instances = getattr(self.manager, "_server_instances", {})
        for sid in [sid for sid, name in self._sessions.items() if name == adapter]:
            self._sessions.pop(sid, None)
            transport = instances.get(sid)
            if transport is not None:
                await self.manager._discard_session(sid, transport)
                closed += 1
        for key in [k for k in self._upstreams if k[1] == adapter]:
            _, upstream = self._upstreams.pop(key)
            self._listings.pop(key, None)
            await upstream.close()
        if closed:
            log.warning("MCP adapter %s is contained: closed %d session(s)", adapter, closed)
        return closed

    # adapters and upstreams ---------------------------------------------------------------

    def adapter(self, name: str) -> Any | None:
        """The `mcp` adapter `name`, or None."""
        found = self._lookup(name)
        return found if found is not None and found.kind == "mcp" else None

    def _catalog_adapter(self, name: str) -> Any | None:
        policy = self.kernel.policy
        catalog = getattr(policy, "catalog", None) if policy is not None else None
        return catalog.adapter(name) if catalog else None

    def adapter_or_404(self, name: str) -> Any:
        found = self.adapter(name)
        if found is None:
            raise NotFound(f"no MCP adapter `{name[:64]}`", code="adapter_not_found")
        return found

    @staticmethod
    def sandbox_of(adapter: Any) -> Sandbox:
        """The adapter's `sandbox:` (the catalog gives every stdio adapter one; the default is
        isolated with no network)."""
        found = getattr(adapter, "sandbox", None)
        return found if isinstance(found, Sandbox) else Sandbox()

    def runtime(self, adapter: Any) -> dict[str, Any] | None:
        """How the adapter's server process runs here, for `GET /api/v1/adapters` and
        `/readyz`: `{sandbox: bubblewrap|none, status: available|unavailable, reason?}`."""
        if getattr(adapter, "kind", None) != "mcp" or not getattr(adapter, "command", None):
            return None
        spec = self.sandbox_of(adapter)
        if not spec.enabled:
            return {"sandbox": "none", "status": "available"}
        why = self.sandboxes.problem(adapter.command, spec)
        if why is None:
            return {"sandbox": "bubblewrap", "status": "available"}
        return {"sandbox": "bubblewrap", "status": "unavailable", "reason": why}

    async def _spec(self, adapter: Any, tenant: str) -> StdioSpec | HttpSpec:
        if adapter.command:
            sandbox = self.sandbox_of(adapter)
            launch = None
            if sandbox.enabled:
                try:
                    launch = await self.sandboxes.launch(
                        adapter.name, adapter.command, sandbox, tuple(getattr(adapter, "egress", ()) or ())
                    )
                except SandboxError as exc:
                    # Fail closed: no sandbox, no server.
                    raise UpstreamError(exc.message, code=exc.code) from None
            elif adapter.name not in self._unsandboxed_warned:
                self._unsandboxed_warned.add(adapter.name)
                log.warning("MCP adapter %s runs WITHOUT a sandbox (`sandbox: none`)", adapter.name)
            env, revealed = {}, []
            for var in adapter.env:
                if var.secret is None:
                    env[var.name] = var.value
                else:
                    env[var.name] = await self._secret(adapter, tenant, var.secret)
                    revealed.append(env[var.name])
            name = adapter.name
            return StdioSpec(
                command=tuple(adapter.command),
                env=env,
                launch=launch,
                on_exit=(lambda: self.sandboxes.collect(name)) if launch is not None else None,
                secrets=tuple(revealed),
            )
        headers: dict[str, str] = {}
        secrets: tuple[str, ...] = ()
        minting = None
        cred = adapter.credential
        if cred is not None and cred.mint:
            if self.mint is None:
                raise UpstreamError(f"adapter `{adapter.name}` mints its credentials: no issuer is set up")
            minting = partial(self._minted, adapter, tenant)
        elif cred is not None and cred.secret is not None:
            value = await self._secret(adapter, tenant, cred.secret)
            headers[cred.header] = cred.render(value)
            secrets = (value, headers[cred.header])
        egress = tuple(getattr(adapter, "egress", ()) or ())
        return HttpSpec(url=adapter.url, headers=headers, egress=egress, on_denied=self._egress_denied,
                        credential=minting, secrets=secrets)  # fmt: skip

    async def _minted(self, adapter: Any, tenant: str, request: Any) -> dict[str, str]:
        """A fresh token for one request to a `url:` upstream whose credential is minted. For a
        gated call its claims name the call (`act` the tool's target, `sid` the session, `sub`
        the caller); a request of the protocol itself (the handshake, `tools/list`, the SSE
        stream) gets one whose `act` names the MCP method, with no session and the gateway as
        its subject, since the connection serves every caller of the tenant."""
        cred = adapter.credential
        assert self.mint is not None and cred is not None
        call = current_call()
        method = _protocol_method(request)
        # Only the call's own request: the SDK's client may list the tools again within a call
        # (to check a result against its output schema), and that listing is the protocol's.
        if call is not None and method == "tools/call":
            action, session_id, subject = call.tool, call.session_id, call.identity_id
        else:
            action, session_id, subject = method, "", "gatehouse"
        minted = await self.mint(
            tenant=tenant, adapter=adapter.name, action=action, session_id=session_id,
            identity_id=subject, audience=cred.audience or adapter.name, ttl=cred.ttl or 600,
        )  # fmt: skip
        header = cred.render(minted.token)
        if call is not None:
            call.sent += (minted.token, header)
        return {cred.header: header}

    async def _secret(self, adapter: Any, tenant: str, name: str) -> str:
        if self.reveal is None:
            raise UpstreamError(
                f"adapter `{adapter.name}` needs secret `{name}`, and no secret store is set up"
            )
        try:
            return await self.reveal(tenant, name)
        except GatehouseError as exc:
            # Names only: the message says which secret is missing, never a value.
            raise UpstreamError(
                f"adapter `{adapter.name}` needs secret `{name}` of tenant `{tenant}`: {exc.code}"
            ) from None

    def _egress_denied(self, adapter: str, exc: Exception) -> None:
        self.metrics.egress_denied.labels(adapter).inc()

    def _sandbox_egress_denied(self, adapter: str, exc: Exception) -> None:
        """A sandboxed server tried to reach a destination outside its `egress`: counted, audited."""
        self.metrics.egress_denied.labels(adapter).inc()
        if isinstance(exc, GatehouseError):
            data = {"adapter": adapter, "reason": exc.details.get("reason"), "message": exc.message[:300]}
            task = asyncio.get_running_loop().create_task(
                self.store.append_audit([AuditEvent(SYSTEM, "sandbox.egress_denied", data)])
            )
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _sandbox_event(self, adapter: str, event: dict[str, Any]) -> None:
        """A sandbox was killed on a limit or could not be set up: audited."""
        kind = str(event.get("event", "unknown"))
        data = {"adapter": adapter, **{k: v for k, v in event.items() if k not in ("event", "at")}}
        await self.store.append_audit([AuditEvent(SYSTEM, f"sandbox.{kind}", data)])

    async def upstream(self, name: str, tenant: str) -> Upstream:
        adapter = self.adapter_or_404(name)
        key = (tenant, adapter.name)
        known = self._upstreams.get(key)
        if known is not None and known[0] == adapter:
            return known[1]
        if known is not None:  # the bundle changed the adapter: stop the old server
            await known[1].close()
            self._listings.pop(key, None)
        upstream = Upstream(adapter.name, await self._spec(adapter, tenant), limits=self.limits)
        self._upstreams[key] = (adapter, upstream)
        return upstream

    async def offered(self, adapter: str, tenant: str, *, fresh: bool) -> list[dict[str, Any]]:
        """The upstream's tools as it lists them now (or within `_LIST_TTL` when not `fresh`)."""
        if fresh:
            return await self._list(adapter, tenant)
        key = (tenant, adapter)
        cached = self._listings.get(key)
        if cached is not None and time.monotonic() - cached[0] < _LIST_TTL:
            return cached[1]
        # The calls that find the listing stale together share one refresh (and its outcome),
        # instead of each listing the upstream again.
        pending = self._refreshing.get(key)
        if pending is None:
            pending = self._refreshing[key] = asyncio.ensure_future(self._list(adapter, tenant))
            pending.add_done_callback(partial(self._refreshed, key))
        # Shielded: a caller that gives up does not cancel the refresh the others wait for.
        return await asyncio.shield(pending)

    def _refreshed(self, key: tuple[str, str], done: asyncio.Future[list[dict[str, Any]]]) -> None:
        if self._refreshing.get(key) is done:
            del self._refreshing[key]
        if not done.cancelled():
            done.exception()  # retrieved here too: every waiter may have given up

    async def _list(self, adapter: str, tenant: str) -> list[dict[str, Any]]:
        tools = await (await self.upstream(adapter, tenant)).list_tools()
        self._listings[(tenant, adapter)] = (time.monotonic(), tools)
        return tools

    async def vetted(self, adapter: str, tenant: str, *, fresh: bool) -> Vetted:
        vetted = await self.vetting.vet(adapter, await self.offered(adapter, tenant, fresh=fresh))
        self._vetted[(tenant, adapter)] = vetted.listed
        return vetted

    def _input_schema(self, tool: str) -> Mapping[str, Any] | None:
        """The input schema of `tool` as last vetted for the caller's tenant and adapter, for
        the SDK's Mcp-Param-* header check. None (the check is skipped) for a tool not vetted
        yet: the headers only mirror the arguments, and the gate decides on the arguments."""
        caller = _CALLER.get()
        if caller is None:
            return None
        definition = self._vetted.get((caller.principal.tenant, caller.adapter), {}).get(tool)
        schema = definition.get("inputSchema") if definition is not None else None
        return schema if isinstance(schema, Mapping) else None

    async def pin(self, adapter: str, tenant: str, tool: str, by: str) -> dict[str, Any]:
        pin = await self.vetting.pin(adapter, tool, await self.offered(adapter, tenant, fresh=True), by)
        for key in [k for k in self._listings if k[1] == adapter]:
            self._listings.pop(key, None)
        return pin.to_public()

    # the HTTP edge ------------------------------------------------------------------------

    async def asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        name = str(scope.get("path_params", {}).get("adapter", ""))
        headers = request.headers
        key = headers.get("x-api-key")
        if not key:
            bearer = headers.get("authorization", "")
            key = bearer[7:].strip() if bearer.lower().startswith("bearer ") else None
        try:
            who = await self.auth.authenticate(key, headers.get("x-tenant-id"))
        except GatehouseError as exc:
            status = 401 if exc.code in ("missing_api_key", "invalid_api_key") else 403
            await _rpc_error(status, exc.code, exc.message)(scope, receive, send)
            return
        adapter = self.adapter(name)
        if adapter is None:
            await _rpc_error(404, "adapter_not_found", f"no MCP adapter `{name[:64]}`")(scope, receive, send)
            return
        containment = self.contained(adapter.name)
        if containment is not None:
            await self.shut(adapter.name)
            why = f"adapter `{adapter.name}` is contained (incident {containment.id}): {containment.reason}"
            await _rpc_error(403, "adapter_contained", why)(scope, receive, send)
            return
        scope = dict(scope)
        caller = scope[_SCOPE_KEY] = McpCaller(principal=who, adapter=adapter.name)
        # The SDK binds sessions and requestState to this principal: identity, tenant, adapter.
        scope["user"] = AuthenticatedUser(
            AccessToken(
                token="",
                client_id=who.identity.id,
                scopes=[],
                subject=f"{who.tenant}/{adapter.name}",
                claims={"iss": "gatehouse"},
            )
        )
        token = _CALLER.set(caller)
        try:
            await self.manager.handle_request(scope, receive, self._session_recorder(adapter.name, send))
        finally:
            _CALLER.reset(token)

    def _session_recorder(self, adapter: str, send: Send) -> Send:
        """`send`, noting the session id the SDK assigns on a stateful `initialize` answer."""

        async def recording(message: Any) -> None:
            if message.get("type") == "http.response.start":
                for name, value in message.get("headers", ()):
                    if name.lower() == b"mcp-session-id":
                        self._sessions[value.decode("latin-1")] = adapter
                        if len(self._sessions) > _MAX_TRACKED_SESSIONS:
                            self._forget_closed_sessions()
            await send(message)

        return recording

    def _forget_closed_sessions(self) -> None:
        instances = getattr(self.manager, "_server_instances", {})
        self._sessions = {sid: a for sid, a in self._sessions.items() if sid in instances}

    # MCP handlers -------------------------------------------------------------------------

    @staticmethod
    def _caller(ctx: Any) -> McpCaller:
        request = ctx.request
        caller = request.scope.get(_SCOPE_KEY) if request is not None else None
        if not isinstance(caller, McpCaller):  # pragma: no cover - every request passes `asgi`
            raise MCPError(INVALID_REQUEST, "unauthenticated")
        return caller

    async def _list_tools(self, ctx: Any, params: Any) -> types.ListToolsResult:
        caller = self._caller(ctx)
        try:
            vetted = await self.vetted(caller.adapter, caller.principal.tenant, fresh=True)
        except UpstreamError as exc:
            raise MCPError(INVALID_REQUEST, exc.message, {"code": exc.code}) from None
        who = caller.principal.identity
        tools = [
            types.Tool.model_validate(t)
            for name, t in vetted.listed.items()
            if who.may_use_adapter(caller.adapter, name)
        ]
        # Never cached by a client: a withheld or re-pinned definition shows on the next list.
        return types.ListToolsResult(tools=tools, ttl_ms=0)

    async def _call_tool(self, ctx: Any, params: types.CallToolRequestParams) -> Any:
        caller = self._caller(ctx)
        adapter, tool = caller.adapter, params.name
        who, tenant = caller.principal.identity, caller.principal.tenant
        arguments: dict[str, Any] = dict(params.arguments or {})
        try:
            vetted = await self.vetted(adapter, tenant, fresh=False)
        except UpstreamError as exc:
            raise MCPError(INVALID_REQUEST, exc.message, {"code": exc.code}) from None
        if tool not in vetted.listed or not who.may_use_adapter(adapter, tool):
            # An unlisted tool (unknown, withheld, out of scope) is a protocol error, not a call.
            reason = vetted.withheld.get(tool, "tool_not_listed")
            raise MCPError(
                INVALID_PARAMS, f"tool `{tool[:64]}` is not listed by this gateway", {"code": reason}
            )
        request = ctx.request
        session_id = self.sessions.session_id(
            identity_id=who.id, tenant=tenant, adapter=adapter, headers=request.headers,
            meta=(ctx.params or {}).get("_meta"),
        )  # fmt: skip
        target = target_of(adapter, tool)
        digest = _args_hash(arguments)
        state = _read_state(ctx.params)
        step_id = state.get("step_id") if state else None
        if state and state.get("session_id"):
            session_id = state["session_id"]
        step_id = step_id or self.sessions.pending_step(session_id, target, digest) or new_id("mcp")
        try:
            await self._ensure_session(caller.principal, session_id)
            evaluated = await self.steps.evaluate(
                who, tenant, session_id=session_id, job_id=None, step_id=step_id, adapter=adapter,
                action=tool, params=arguments, claim=True,
            )  # fmt: skip
        except GatehouseError as exc:
            self.calls_total.labels(adapter, "error").inc()
            raise MCPError(INVALID_PARAMS, exc.message, {"code": exc.code}) from None
        record = evaluated.record
        if record.result == _APPROVAL:
            self.sessions.remember_pending(session_id, target, digest, step_id)
            approval_id = record.to_public().get("approval_id")
            answer = await self._ask_approval(ctx, tool, approval_id, state, session_id, step_id)
            if answer is not None:
                self.calls_total.labels(adapter, _APPROVAL).inc()
                return answer
            # The client showed the approval page and came back: decide the same step again.
            evaluated = await self.steps.evaluate(
                who, tenant, session_id=session_id, job_id=None, step_id=step_id, adapter=adapter,
                action=tool, params=arguments, claim=True,
            )  # fmt: skip
            record = evaluated.record
            if record.result == _APPROVAL:
                self.calls_total.labels(adapter, _APPROVAL).inc()
                return self._approval_result(tool, approval_id)
        self.sessions.settle(session_id, target, digest)
        if record.result == DENY:
            self.calls_total.labels(adapter, DENY).inc()
            text = (f"Gatehouse denied `{tool}`: rule `{record.rule_id}`: {record.reason} "
                    f"(decision {record.decision_id})")  # fmt: skip
            return _text_result(text, error=True, meta={"gatehouse/decision": record.to_public()})
        if record.result != ALLOW:  # pragma: no cover - the step gate answers these three
            raise MCPError(INVALID_REQUEST, f"unexpected decision `{record.result}`")
        # One approval, one execution, across replicas: a step decided by this call was stored
        # claimed; one decided before (a replayed requestState, an approval) is claimed now.
        if not evaluated.claimed and not await self.store.claim_step(session_id, step_id, now()):
            raise MCPError(INVALID_PARAMS, "this call was made already", {"code": "step_replayed"})
        self.calls_total.labels(adapter, ALLOW).inc()
        return await self._forward(caller, session_id, step_id, tool, arguments)

    async def _ensure_session(self, who: Principal, session_id: str) -> None:
        try:
            await self.steps.session(who.identity, who.tenant, session_id)
        except NotFound:
            # First call of this session: open it (another identity's id answers a conflict).
            with contextlib.suppress(GatehouseError):
                await self.steps.open_session(who.identity, who.tenant, session_id=session_id, task="")
            await self.steps.session(who.identity, who.tenant, session_id)

    async def _forward(
        self, caller: McpCaller, session_id: str, step_id: str, tool: str, arguments: dict[str, Any]
    ) -> types.CallToolResult:
        who, tenant = caller.principal.identity, caller.principal.tenant
        call = UpstreamCall(tool=tool, session_id=session_id, identity_id=who.id)
        secrets: tuple[str, ...] = ()
        try:
            upstream = await self.upstream(caller.adapter, tenant)
            secrets = upstream.spec.secrets
            wire = await upstream.call_tool(tool, arguments, call=call)
            status = "failed" if wire.get("isError") else "succeeded"
        except UpstreamError as exc:
            wire, status = {"content": [{"type": "text", "text": exc.message}], "isError": True}, "failed"
        # An upstream that echoes its request must not hand the agent the credential it was sent.
        scrub = Scrubber((*secrets, *call.sent))
        output = scrub.value({k: wire[k] for k in ("content", "structuredContent") if k in wire})
        shown = await self.steps.result(
            who, tenant, session_id=session_id, job_id=None, step_id=step_id, status=status, output=output
        )
        if shown.output is None:
            verdict = shown.verdict
            return _text_result(
                f"Gatehouse withheld the output of `{tool}`: rule `{verdict.rule_id}`: {verdict.reason}",
                error=True,
            )
        result = types.CallToolResult.model_validate({**shown.output, "isError": status == "failed"})
        return result

    # approvals ----------------------------------------------------------------------------

    def _approval_url(self, ctx: Any, approval_id: str | None) -> str:
        base = self.public_url or str(ctx.request.base_url).rstrip("/")
        return f"{base}/ui/approvals/{approval_id}"

    def _approval_result(self, tool: str, approval_id: str | None) -> types.CallToolResult:
        text = (f"`{tool}` needs a human approval (approval {approval_id}). Once it is approved, "
                f"make the identical call again; a changed call needs its own approval.")  # fmt: skip
        return _text_result(text, error=True, meta={"gatehouse/approval_id": approval_id})

    async def _ask_approval(
        self, ctx: Any, tool: str, approval_id: str | None, state: dict[str, Any] | None,
        session_id: str, step_id: str,
    ) -> Any:  # fmt: skip
        """What to answer a call that waits for approval; None to decide it again now."""
        url = self._approval_url(ctx, approval_id)
        message = f"Gatehouse: `{tool}` needs a human approval. Open {url} to review it."
        caps = ctx.session.client_capabilities
        url_mode = caps is not None and caps.elicitation is not None and caps.elicitation.url is not None
        if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
            if state is not None or not url_mode:
                # The client came back with the sealed state (or cannot be asked): say so.
                return self._approval_result(tool, approval_id)
            elicit = types.ElicitRequest(params=types.ElicitRequestURLParams(message=message, url=url))
            sealed = json.dumps({"approval_id": approval_id, "session_id": session_id, "step_id": step_id,
                                 "snapshot": self.kernel.snapshot})  # fmt: skip
            return types.InputRequiredResult(input_requests={"approval": elicit}, request_state=sealed)
        if not url_mode or not ctx.session.can_send_request:
            return self._approval_result(tool, approval_id)
        try:
            answer = await ctx.session.elicit_url(
                message, url, str(approval_id), related_request_id=ctx.request_id
            )
        except Exception as exc:  # a client that cannot answer: fall back to the plain result
            log.info("URL elicitation failed: %s", exc)
            return self._approval_result(tool, approval_id)
        if answer.action != "accept":
            return self._approval_result(tool, approval_id)
        return None


def _read_state(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    # The SDK's boundary has verified and unsealed it: this is the plaintext we minted.
    raw = params.get("requestState") if params is not None else None
    if not isinstance(raw, str):
        return None
    try:
        state = json.loads(raw)
    except ValueError:
        return None
    return state if isinstance(state, dict) else None

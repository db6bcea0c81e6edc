"""The broker's execution route: a tool call the agent asks for, gated, made and gated again
under one step id (`POST /api/v1/adapters/{adapter}/{action}`).

Theory of operation. `execute` takes a step the way the step gate does, for an adapter of the
catalog whose kind is `http` (an `external` or `mcp` one is 409 `not_executable`: the caller or
the MCP gateway makes those calls). Its outcome is one of

- `denied` / `approval`: the step gate's answer, nothing sent (the route answers 403 / 202; the
  identical call once a person approved runs it, once);
- `ran`: the call was made and its output passed the output gate (`StepGate.result`, which keeps
  an untrusted action's output for provenance); the answer carries the output as the agent may
  see it, the upstream's HTTP status and the latency of the exchange.

Between the two gates, in order: containment is checked again (a step allowed before an
incident must not run during it), the request is built from the catalog (`broker.requests`:
path params encoded and checked for traversal and CR/LF), the credential is put in (the stored
secret revealed for this call, or a token minted for it), and `broker.transport.fetch` sends it
through the adapter's egress list on the adapter's own pinned transport. Every allowed step ends
with exactly one result: a refusal or an upstream failure after the gate is recorded as a
`failed` result and answered with its error (403 `egress_denied`, 502, 504, 422 ...), so a step
id never runs twice and a retry takes a new one.

Credential values never leave this module except in the outbound header: they are scrubbed
from the output (an upstream may echo the request) and from every error, and the audit entry
(`adapter.call`) names the secret or the token's jti, never a value. Params enter the audit log
as their schema only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from gatehouse.audit.events import AuditEvent, adapter_call_event
from gatehouse.broker.credentials import Credentials
from gatehouse.broker.requests import Scrubber, build_request, check_header_value, decode_output
from gatehouse.broker.secrets import Secrets
from gatehouse.broker.transport import EgressLimits, PinnedTransport, Resolver, SystemResolver, fetch
from gatehouse.control.deps import Deps
from gatehouse.control.incidents import Incidents
from gatehouse.control.steps import StepGate, StepResult
from gatehouse.domain.identity import Identity
from gatehouse.domain.ids import now
from gatehouse.domain.records import DecisionRecord
from gatehouse.domain.sessions import Session, params_schema
from gatehouse.domain.steps import catalog_of
from gatehouse.errors import Conflict, Forbidden, GatehouseError, NotFound, Upstream
from gatehouse.output.gate import OutputVerdict
from gatehouse.policy import ALLOW, DENY
from gatehouse.policy.catalog import Action, Adapter

__all__ = ["Broker", "Executed"]


@dataclass(frozen=True, slots=True)
class Executed:
    """What became of one brokered call: `denied`, `approval` (waits for a person) or `ran`."""

    outcome: str
    session: Session
    record: DecisionRecord
    step_id: str
    result: StepResult | None = None
    http_status: int | None = None
    latency_ms: float | None = None

    def to_public(self) -> dict[str, Any]:
        out: dict[str, Any] = {"decision": self.record.to_public(), "session_id": self.session.id,
                               "step_id": self.step_id}  # fmt: skip
        if self.outcome == "approval":
            out["approval_id"] = self.record.extra.get("approval_id")
            out["status"] = "pending_approval"
            return out
        if self.result is not None:
            out.update(
                status=self.result.step.status,
                http_status=self.http_status,
                output=self.result.output,
                withheld=self.result.verdict.decision == "quarantine",
                output_decision=self.result.verdict.to_dict(),
                latency_ms=self.latency_ms,
            )
        return out


class Broker:
    def __init__(
        self,
        *,
        deps: Deps,
        steps: StepGate,
        incidents: Incidents,
        secrets: Secrets,
        credentials: Credentials,
        resolver: Resolver | None = None,
        limits: EgressLimits | None = None,
    ) -> None:
        self.store = deps.store
        self.kernel = deps.kernel
        self.metrics = deps.metrics
        self.steps = steps
        self.incidents = incidents
        self.secrets = secrets
        self.credentials = credentials
        self.resolver: Resolver = resolver or SystemResolver()
        self.limits = limits or EgressLimits(
            max_bytes=deps.settings.broker_max_response_bytes, timeout=deps.settings.broker_timeout
        )
        # One pool per adapter: a connection opened for one adapter's credential and egress
        # list is never reused for another's.
        self._transports: dict[str, PinnedTransport] = {}
        # Steps being executed now: a second identical call while the first is in flight must
        # not make the call twice (the step has no result yet to tell them apart).

    async def aclose(self) -> None:
        transports, self._transports = list(self._transports.values()), {}
        for t in transports:
            await t.aclose()

    def _transport(self, adapter: str) -> PinnedTransport:
        t = self._transports.get(adapter)
        if t is None:
            t = self._transports[adapter] = PinnedTransport()
        return t

    def _executable(self, who: Identity, adapter: str, action: str) -> tuple[Adapter, Action] | None:
        """The catalog's adapter and action when the broker can run them; None when they are
        outside the caller's scope (the step gate then denies, telling nothing of the catalog)."""
        if not who.may_use_adapter(adapter, action):
            return None
        found = catalog_of(self.kernel.policy).lookup(adapter, action)
        if found.adapter is None:
            raise NotFound(f"the adapter catalog has no adapter `{adapter[:64]}`", code="adapter_not_found")
        kind = found.adapter.kind
        if found.action is None and kind == "http":
            raise NotFound(
                f"adapter `{found.adapter.name}` has no action `{action[:64]}`", code="unknown_action"
            )
        if kind != "http":
            where = (f"it is served at /mcp/{found.adapter.name}" if kind == "mcp"
                     else "the caller makes it and reports it with POST /api/v1/steps/result")  # fmt: skip
            raise Conflict(
                f"adapter `{found.adapter.name}` is of kind `{kind}`: the broker does not run it ({where})",
                code="not_executable",
                details={"adapter": found.adapter.name, "kind": kind},
            )
        assert found.action is not None
        return found.adapter, found.action

    async def execute(
        self,
        who: Identity,
        tenant: str,
        *,
        adapter: str,
        action: str,
        session_id: str | None,
        job_id: str | None,
        step_id: str,
        params: Any,
    ) -> Executed:
        who.require_role("agent", message=f"identity `{who.name}` needs the agent role to take steps")
        found = self._executable(who, adapter, action)
        evaluated = await self.steps.evaluate(
            who, tenant, session_id=session_id, job_id=job_id, step_id=step_id, adapter=adapter,
            action=action, params=params, claim=True,
        )  # fmt: skip
        session, record = evaluated.session, evaluated.record
        if record.result == DENY:
            return Executed("denied", session, record, step_id)
        if record.result != ALLOW:
            return Executed("approval", session, record, step_id)
        if found is None:  # pragma: no cover - the gate denies a step outside the scope
            raise Forbidden(f"`{adapter}:{action}` is outside the caller's scope", code="identity_scope")
        # One allowed step, one call, across replicas: a step decided by this call was stored
        # claimed with its decision; one decided before (a retry, an approval) is claimed now.
        if not evaluated.claimed and not await self.store.claim_step(session.id, step_id, now()):
            known = await self.store.get_step(session.id, step_id)
            if known is not None and known.status is not None:
                raise Conflict(
                    f"step `{step_id}` of session `{session.id}` ran already (`{known.status}`): "
                    "one allowed step, one call; take a new step id to call again",
                    code="step_executed",
                    details={"session_id": session.id, "step_id": step_id, "status": known.status},
                )
            raise Conflict(
                f"step `{step_id}` is being executed, or was taken for execution and never "
                "reported (one allowed step, one call): take a new step id to call again",
                code="step_in_progress",
                details={"session_id": session.id, "step_id": step_id},
            )
        return await self._run(who, tenant, session, record, job_id, step_id, found, params)

    async def _run(
        self,
        who: Identity,
        tenant: str,
        session: Session,
        record: DecisionRecord,
        job_id: str | None,
        step_id: str,
        found: tuple[Adapter, Action],
        params: dict[str, Any],
    ) -> Executed:
        adapter, action = found
        call = _Call(who=who, tenant=tenant, session=session, job_id=job_id, step_id=step_id, adapter=adapter)
        call.audit.update(
            session_id=session.id, step_id=step_id, decision_id=record.decision_id, adapter=adapter.name,
            action=action.name, method=action.method or "GET", params_schema=params_schema(params),
            credential=None,
        )  # fmt: skip
        try:
            # Containment again: a step allowed (or approved) before the incident must not run
            # during it. Before any credential is minted or any byte sent.
            c = self.incidents.check(tenant, who.id, adapter.name)
            if c is not None:
                why = self.incidents.why(c)
                raise Forbidden(why, code="incident_containment", details={"incident": c.id})
            request = build_request(adapter, action, params)
            if adapter.credential is not None:
                value, named = await self._credential(who, tenant, session, adapter, action)
                call.audit["credential"] = named
                header = adapter.credential.render(value)
                call.scrub = Scrubber((value,))  # the header holds it: scrubbed with it
                check_header_value(adapter.credential.header, header)
                request.headers[adapter.credential.header] = header
            call.sent_at = time.perf_counter()
            fetched = await fetch(
                request, adapter.egress, transport=self._transport(adapter.name), resolver=self.resolver,
                limits=self.limits, adapter=adapter.name, metrics=self.metrics,
            )  # fmt: skip
        except GatehouseError as exc:
            await self._failed(call, exc)
            raise
        except (httpx.HTTPError, ValueError, UnicodeError, OSError) as exc:
            # Not one of ours: said by its type alone, since its text may quote a header.
            error = Upstream(f"the call could not be made ({type(exc).__name__})", code="upstream_error")
            await self._failed(call, error)
            raise error from None
        latency = time.perf_counter() - call.sent_at
        output = decode_output(fetched.headers, fetched.content, call.scrub)
        status = "succeeded" if 200 <= fetched.status_code < 400 else "failed"
        latency_ms = round(latency * 1000, 3)
        call.audit.update(
            status=status, http_status=fetched.status_code, latency_ms=latency_ms,
            redirects=len(fetched.redirects),
        )  # fmt: skip

        def account(verdict: OutputVerdict) -> list[AuditEvent]:
            return [adapter_call_event(tenant, {**call.audit, "output_decision": verdict.decision})]

        # The call's audit entry travels with the step's result (one transaction).
        result = await self.steps.result(
            who, tenant, session_id=None if job_id else session.id, job_id=job_id, step_id=step_id,
            status=status, output=output, audit=account, session=session,
        )  # fmt: skip
        self.metrics.adapter_calls.labels(adapter.name, status).inc()
        self.metrics.adapter_call_seconds.labels(adapter.name).observe(latency)
        return Executed("ran", session, record, step_id, result=result, http_status=fetched.status_code,
                        latency_ms=latency_ms)  # fmt: skip

    async def _credential(
        self, who: Identity, tenant: str, session: Session, adapter: Adapter, action: Action
    ) -> tuple[str, dict[str, Any]]:
        """The credential value for this call, and how the audit log names it."""
        cred = adapter.credential
        assert cred is not None
        if cred.mint:
            minted = await self.credentials.mint(
                tenant=tenant, adapter=adapter.name, action=action.name, session_id=session.id,
                identity_id=who.id, audience=cred.audience or adapter.name, ttl=cred.ttl or 600,
            )  # fmt: skip
            return minted.token, {"kind": "minted", "jti": minted.credential.jti}
        name = cred.secret or ""
        try:
            value = await self.secrets.reveal(tenant, name)
        except NotFound:
            raise Conflict(
                f"adapter `{adapter.name}` needs secret `{name}`, which this tenant has not set",
                code="secret_missing",
                details={"secret": name},
            ) from None
        return value, {"kind": "secret", "name": name}

    async def _failed(self, call: _Call, exc: GatehouseError) -> None:
        """Close the step with a `failed` result and audit the call; `exc` scrubbed in place."""
        exc.message = call.scrub.text(exc.message)
        exc.args = (exc.message,)
        where = {"session_id": call.session.id, "step_id": call.step_id}
        exc.details = {**call.scrub.value(exc.details), **where}
        elapsed = time.perf_counter() - (call.sent_at if call.sent_at is not None else call.started)
        call.audit.update(
            status="failed", http_status=None, latency_ms=round(elapsed * 1000, 3), error=exc.code,
            reason=exc.details.get("reason"), sent=call.sent_at is not None,
        )  # fmt: skip
        await self.steps.result(
            call.who, call.tenant, session_id=None if call.job_id else call.session.id,
            job_id=call.job_id, step_id=call.step_id, status="failed",
            output={"error": {"code": exc.code, "message": exc.message}},
            audit=lambda _verdict: [adapter_call_event(call.tenant, call.audit)],
        )  # fmt: skip
        self.metrics.adapter_calls.labels(call.adapter.name, exc.code).inc()


@dataclass(slots=True, kw_only=True)
class _Call:
    """One execution in progress: who, where, and what the audit entry will say."""

    who: Identity
    tenant: str
    session: Session
    job_id: str | None
    step_id: str
    adapter: Adapter
    audit: dict[str, Any] = field(default_factory=dict)
    scrub: Scrubber = field(default_factory=lambda: Scrubber(()))
    started: float = field(default_factory=time.perf_counter)
    sent_at: float | None = None

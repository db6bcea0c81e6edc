"""The adapter catalog over HTTP: `GET /api/v1/adapters` (the bundle's `adapters:`), and the
broker's execution route `POST /api/v1/adapters/{adapter}/{action}` (`control.broker`).

Any authenticated identity may read it: an agent needs the actions' parameter schemas to call
them well. An admin sees every adapter; anybody else the adapters and actions within their
adapter scope (an MCP adapter, whose tools come from its upstream, when the scope names the
adapter at all). Only secret *names* are in the catalog, never their values.

Execution answers 403 with the decision when the step gate denies, 202 with `approval_id` when
it waits for a person, 200 `{decision, status, http_status, output, latency_ms, ...}` when the
call was made (the output as the agent may see it: redacted, or withheld).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from gatehouse.api.auth import Principal, authenticate, rate_limited
from gatehouse.api.body import StrictJSONRoute, openapi_body, parse
from gatehouse.api.errors import json_response
from gatehouse.api.schemas import AdapterCallIn
from gatehouse.domain.identity import Identity
from gatehouse.domain.steps import catalog_of
from gatehouse.errors import Denied
from gatehouse.policy.catalog import Adapter

router = APIRouter(prefix="/api/v1", tags=["adapters"], route_class=StrictJSONRoute)
Auth = Annotated[Principal, Depends(authenticate)]


def _view(adapter: Adapter, who: Identity) -> dict[str, Any] | None:
    """The adapter as `who` may see it, or None when it is outside their scope."""
    if who.is_admin:
        return adapter.to_public()
    actions = {n: a for n, a in adapter.actions.items() if who.may_use_adapter(adapter.name, n)}
    if actions or (not adapter.lists_actions and who.scopes_adapter(adapter.name)):
        return adapter.to_public(actions)
    return None


@router.get("/adapters")
async def list_adapters(request: Request, who: Auth) -> Response:
    policy = request.app.state.plane.kernel.policy
    gateway = request.app.state.gateway
    shown = []
    for adapter in catalog_of(policy).adapters.values():
        view = _view(adapter, who.identity)
        if view is None:
            continue
        # How its process runs here: sandboxed or not, and why it cannot start when it cannot.
        runtime = gateway.runtime(adapter)
        if runtime is not None:
            view["runtime"] = runtime
        shown.append(view)
    return json_response(
        {"adapters": shown, "policy_snapshot": policy.snapshot if policy is not None else None}
    )


@router.post("/adapters/{adapter}/{action}", openapi_extra=openapi_body(AdapterCallIn))
async def call_adapter(adapter: str, action: str, request: Request) -> Response:
    # Lean, as the step routes are: no dependency machinery on the path of every tool call.
    who = await rate_limited(request)
    body = await parse(request, AdapterCallIn)
    broker = request.app.state.plane.broker
    done = await broker.execute(
        who.identity, who.tenant, adapter=adapter, action=action, session_id=body.session_id,
        job_id=body.job_id, step_id=body.step_id, params=body.params,
    )  # fmt: skip
    answer = done.to_public()
    if done.outcome == "denied":
        raise Denied(done.record.reason, code="step_denied", details=answer)
    return json_response(answer, 202 if done.outcome == "approval" else 200)


async def call_adapter_lean(request: Request) -> Response:
    """`call_adapter` as a plain Starlette endpoint (`api.app` serves it so)."""
    params = request.path_params
    return await call_adapter(params["adapter"], params["action"], request)

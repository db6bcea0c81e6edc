"""Policy: read, install, simulate, explain."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from gatehouse.api.auth import Principal, authenticate, rate_limited
from gatehouse.api.body import StrictJSONRoute
from gatehouse.api.errors import json_response
from gatehouse.api.schemas import DecideIn, PolicyIn
from gatehouse.domain.ids import rfc3339
from gatehouse.errors import Forbidden, NotFound

router = APIRouter(prefix="/api/v1/policy", tags=["policy"], route_class=StrictJSONRoute)
Auth = Annotated[Principal, Depends(authenticate)]
Limited = Annotated[Principal, Depends(rate_limited)]


# Who may read the bundle itself: the people who judge and run it. An agent learns which
# snapshot judges it, never the rules (which would show it where the lines are drawn).
_READERS = ("reviewer", "approver", "admin")


def _scrub(request: Request, text: str | None) -> str | None:
    """`text` without the server's file paths: a policy file is named by its file name only."""
    if not text:
        return text
    settings = request.app.state.settings
    for path in (settings.policy_file, settings.data_dir):
        if path is None:
            continue
        for spelled in {str(path), str(path.resolve())}:
            text = text.replace(spelled, path.name)
    return text


def _describe(request: Request, who: Principal) -> dict[str, object]:
    plane = request.app.state.plane
    installer = plane.installer
    current = installer.current
    reader = who.identity.has_role(*_READERS)
    if current is None:
        degraded = _scrub(request, installer.degraded) if reader else None
        raise NotFound(
            "no policy bundle is installed",
            code="no_policy",
            details={"degraded": degraded} if degraded else None,
        )
    policy = current.policy
    if not reader:
        return {"name": policy.name, "snapshot": policy.snapshot, "policy_snapshot": policy.snapshot}
    return {
        "name": policy.name,
        "snapshot": policy.snapshot,
        "policy_snapshot": policy.snapshot,
        "rules": len(policy.rules),
        "output_rules": len(policy.output_rules),
        "default_decision": policy.default_decision,
        "fail_mode": policy.fail_mode,
        "bundle": policy.text,
        "signed": current.signed,
        "signature_verified": current.signature_verified,
        "signature": current.signature,
        "serial": current.serial,
        "installed_at": rfc3339(current.installed_at),
        "installed_by": _scrub(request, current.installed_by),
        "degraded": _scrub(request, installer.degraded),
    }


@router.get("")
async def get_policy(request: Request, who: Auth) -> Response:
    return json_response(_describe(request, who))


@router.put("")
async def put_policy(body: PolicyIn, request: Request, who: Auth) -> Response:
    who.require("admin")
    if not who.identity.is_global_admin:
        # One bundle judges every tenant: an admin of one tenant does not install it.
        raise Forbidden("only a global admin installs the policy bundle", code="global_admin_required")
    await request.app.state.plane.installer.install(body.bundle, body.signature, by=who.identity.id)
    return json_response(_describe(request, who))


# -- the shadow bundle (docs/policy-rollout.md) ------------------------------------------------


def _global_admin(who: Principal, what: str) -> None:
    who.require("admin")
    if not who.identity.is_global_admin:
        # One shadow bundle is compared on every tenant's traffic, as one live bundle judges it.
        raise Forbidden(f"only a global admin {what} the shadow bundle", code="global_admin_required")


def _describe_shadow(request: Request) -> dict[str, object]:
    shadow = request.app.state.plane.shadow.current
    if shadow is None:
        raise NotFound("no shadow bundle is installed", code="no_shadow_policy")
    policy = shadow.policy
    live = request.app.state.plane.installer.current
    return {
        "name": policy.name,
        "snapshot": policy.snapshot,
        "policy_snapshot": policy.snapshot,
        "live_snapshot": live.policy.snapshot if live is not None else None,
        "rules": len(policy.rules),
        "default_decision": policy.default_decision,
        "bundle": policy.text,
        "signed": shadow.signed,
        "signature": shadow.signature,
        "serial": shadow.serial,
        "installed_at": rfc3339(shadow.installed_at),
        "installed_by": _scrub(request, shadow.installed_by),
        "enforced": False,
    }


@router.put("/shadow")
async def put_shadow(body: PolicyIn, request: Request, who: Auth) -> Response:
    """Install a candidate judged beside the live bundle, never enforced (same body and signature
    rules as `PUT /api/v1/policy`)."""
    _global_admin(who, "installs")
    await request.app.state.plane.shadow.install(body.bundle, body.signature, by=who.identity.id)
    return json_response(_describe_shadow(request))


@router.get("/shadow")
async def get_shadow(request: Request, who: Auth) -> Response:
    who.require("admin")
    return json_response(_describe_shadow(request))


@router.delete("/shadow")
async def delete_shadow(request: Request, who: Auth) -> Response:
    _global_admin(who, "removes")
    if not await request.app.state.plane.shadow.remove(by=who.identity.id):
        raise NotFound("no shadow bundle is installed", code="no_shadow_policy")
    return json_response({"removed": True})


@router.get("/shadow/diff")
async def shadow_diff(
    request: Request, who: Auth, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> Response:
    """The decisions the shadow bundle disagreed on, newest first: the live decision (enforced,
    under its id in the decision log) and the shadow's. An admin of one tenant sees its own."""
    who.require("admin")
    shadow = request.app.state.plane.shadow.current
    if shadow is None:
        raise NotFound("no shadow bundle is installed", code="no_shadow_policy")
    tenant = None if who.identity.is_global_admin else who.tenant
    await request.app.state.plane.shadow.drain()  # this replica's gathered ones, written first
    found = await request.app.state.plane.store.disagreements(
        shadow_snapshot=shadow.policy.snapshot, tenant=tenant, limit=limit
    )
    return json_response(
        {
            "shadow_snapshot": shadow.policy.snapshot,
            "count": len(found),
            "disagreements": [d.to_public() for d in found],
        }
    )


@router.post("/simulate")
async def simulate(body: DecideIn, request: Request, who: Limited) -> Response:
    record = await request.app.state.plane.submit_gate.simulate(who.identity, who.tenant, body.to_request())
    return json_response(record.to_public())


@router.post("/explain")
async def explain(body: DecideIn, request: Request, who: Limited) -> Response:
    gate = request.app.state.plane.submit_gate
    return json_response(await gate.explain(who.identity, who.tenant, body.to_request()))

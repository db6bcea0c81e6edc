"""Incident containment: admins contain a tenant or an identity, and lift it again."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.responses import Response

from gatehouse.api.auth import Principal, authenticate
from gatehouse.api.body import StrictJSONRoute
from gatehouse.api.errors import json_response
from gatehouse.api.params import Cursor, PageLimit
from gatehouse.errors import BadRequest, Forbidden
from gatehouse.policy._durations import parse_duration

router = APIRouter(prefix="/api/v1/incidents", tags=["incidents"], route_class=StrictJSONRoute)
Auth = Annotated[Principal, Depends(authenticate)]


class ContainIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tenant: str | None = Field(None, min_length=1, max_length=63)
    identity: str | None = Field(None, min_length=1, max_length=64)
    adapter: str | None = Field(None, min_length=1, max_length=128)
    reason: str = Field(min_length=1, max_length=2000)
    force: bool = Field(False, description="contain a tenant or identity that does not exist (yet)")

    @model_validator(mode="after")
    def _one_target(self) -> ContainIn:
        if sum(x is not None for x in (self.tenant, self.identity, self.adapter)) != 1:
            raise ValueError("give exactly one of tenant, identity or adapter")
        return self

    @property
    def kind_and_target(self) -> tuple[str, str]:
        for kind in ("tenant", "identity", "adapter"):
            value = getattr(self, kind)
            if value is not None:
                return kind, value
        raise AssertionError("validated above")


@router.post("/contain", status_code=201)
async def contain(body: ContainIn, request: Request, who: Auth) -> Response:
    who.require("admin")
    kind, target = body.kind_and_target
    c = await request.app.state.plane.incidents.contain(
        who.identity, kind=kind, target=target, reason=body.reason, force=body.force
    )
    return json_response(c.to_public(), 201)


@router.get("")
async def list_incidents(
    request: Request,
    who: Auth,
    active: bool = True,
    limit: PageLimit = 200,
    cursor: Cursor = None,
) -> Response:
    who.require("reviewer")
    incidents = request.app.state.plane.incidents
    # A global admin sees every containment; others their own tenant's (an admin of the tenant
    # also its identities').
    page = await incidents.page(who.identity, active_only=active, limit=limit, cursor=cursor)
    return json_response({"incidents": [c.to_public() for c in page.items], "next_cursor": page.next_cursor})


def _seconds(value: str, name: str, most: int) -> int:
    try:
        seconds = parse_duration(value)
    except (ValueError, OverflowError):
        seconds = 0
    if not 0 < seconds <= most:
        raise BadRequest(
            f"`{name}` must be a duration such as `5m` or `1h`, at most {most}s, not `{value}`",
            code=f"invalid_{name}",
        )
    return seconds


@router.get("/status")
async def incident_status(
    request: Request,
    who: Auth,
    window: Annotated[str, Query(max_length=16)] = "5m",
    baseline: Annotated[str, Query(max_length=16)] = "1h",
    threshold: Annotated[float, Query(ge=1.0, le=1000.0)] = 3.0,
) -> Response:
    """What on call needs first: the containments in force and each incident signal's rate in
    the last `window` against the `baseline` before it (control/signals.py)."""
    who.require("admin")
    # The counters are the whole server's: a tenant admin would learn other tenants' activity.
    if not who.identity.is_global_admin:
        raise Forbidden(
            "incident status covers every tenant: a global admin only", code="global_admin_required"
        )
    plane = request.app.state.plane
    status = plane.signals.status(
        _seconds(window, "window", 6 * 3600), _seconds(baseline, "baseline", 24 * 3600), threshold
    )
    active = await plane.incidents.list(active_only=True)
    return json_response({"containments": [c.to_public() for c in active], **status})


@router.post("/{incident_id}/lift")
async def lift(incident_id: str, request: Request, who: Auth) -> Response:
    who.require("admin")
    c = await request.app.state.plane.incidents.lift(who.identity, incident_id)
    return json_response(c.to_public())

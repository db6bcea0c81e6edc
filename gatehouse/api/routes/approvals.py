"""Approvals: the queue, approve and reject (approvers only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from gatehouse.api.auth import Principal, authenticate
from gatehouse.api.body import StrictJSONRoute
from gatehouse.api.errors import json_response
from gatehouse.api.params import Cursor, PageLimit
from gatehouse.domain.states import APPROVAL_STATUSES
from gatehouse.errors import BadRequest

router = APIRouter(prefix="/api/v1/approvals", tags=["approvals"], route_class=StrictJSONRoute)
Auth = Annotated[Principal, Depends(authenticate)]
_STATUSES = APPROVAL_STATUSES


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    comment: str | None = Field(None, max_length=2000)
    token: dict[str, Any] | None = None


@router.get("")
async def list_approvals(
    request: Request,
    who: Auth,
    status: str | None = "pending",
    limit: PageLimit = 200,
    cursor: Cursor = None,
) -> Response:
    if status is not None and status not in _STATUSES:
        raise BadRequest(f"unknown approval status `{status}`", code="invalid_status")
    flow = request.app.state.plane.approvals
    # A bad cursor is BadRequest(invalid_cursor) from the store itself (store/base.py).
    page = await flow.pending(who.identity, who.tenant, status, limit=limit, cursor=cursor)
    return json_response({"approvals": page.approvals, "next_cursor": page.next_cursor})


@router.get("/{approval_id}")
async def get_approval(approval_id: str, request: Request, who: Auth) -> Response:
    flow = request.app.state.plane.approvals
    return json_response(await flow.show(who.identity, who.tenant, approval_id))


@router.post("/{job_id}/approve")
async def approve(job_id: str, request: Request, who: Auth, body: DecisionIn | None = None) -> Response:
    body = body or DecisionIn.model_validate({})
    flow = request.app.state.plane.approvals
    return json_response(await flow.approve(who.identity, who.tenant, job_id, body.comment, body.token))


@router.post("/{job_id}/reject")
async def reject(job_id: str, request: Request, who: Auth, body: DecisionIn | None = None) -> Response:
    body = body or DecisionIn.model_validate({})
    flow = request.app.state.plane.approvals
    return json_response(await flow.reject(who.identity, who.tenant, job_id, body.comment))

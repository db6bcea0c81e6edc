"""The decision log of a tenant: every decision record, including denied submits (which leave
no job) and simulations; and the remediation of a denied submit from its record."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from gatehouse.api.auth import Principal, authenticate, rate_limited
from gatehouse.api.body import StrictJSONRoute
from gatehouse.api.errors import json_response
from gatehouse.api.params import Cursor, PageLimit, since_param
from gatehouse.api.routes.jobs import submitted_response
from gatehouse.api.schemas import RemediateIn
from gatehouse.errors import BadRequest, NotFound

router = APIRouter(prefix="/api/v1/decisions", tags=["decisions"], route_class=StrictJSONRoute)
Auth = Annotated[Principal, Depends(authenticate)]
Limited = Annotated[Principal, Depends(rate_limited)]

STAGES = frozenset({"submit", "dispatch", "step", "output", "simulate", "approval"})
RESULTS = frozenset({"allow", "deny", "require_approval", "redact", "quarantine"})


@router.get("")
async def list_decisions(
    request: Request,
    who: Auth,
    stage: str | None = None,
    result: str | None = None,
    rule_id: str | None = None,
    since: str | None = None,
    limit: PageLimit = 50,
    cursor: Cursor = None,
) -> Response:
    if stage is not None and stage not in STAGES:
        raise BadRequest(
            f"unknown stage `{stage}` (one of {', '.join(sorted(STAGES))})", code="invalid_stage"
        )
    if result is not None and result not in RESULTS:
        raise BadRequest(
            f"unknown result `{result}` (one of {', '.join(sorted(RESULTS))})", code="invalid_result"
        )
    seq, since_ts = since_param(since)
    if seq:  # the audit log's sequence numbers mean nothing here
        raise BadRequest(
            f"`since` must be an RFC 3339 time or a time ago such as `1h`, not `{since}`",
            code="invalid_since",
        )
    # A bad cursor is BadRequest(invalid_cursor) from the store itself (store/base.py).
    page = await request.app.state.store.list_decisions(
        who.tenant,
        stage=stage,
        result=result,
        rule_id=rule_id,
        since=since_ts,
        limit=limit,
        cursor=cursor,
    )
    return json_response(
        {"decisions": [r.to_public() for r in page.decisions], "next_cursor": page.next_cursor}
    )


@router.get("/{decision_id}")
async def get_decision(decision_id: str, request: Request, who: Auth) -> Response:
    record = await request.app.state.store.decision(decision_id, who.tenant)
    if record is None:
        raise NotFound(f"no decision `{decision_id}`", code="decision_not_found")
    return json_response(record.to_public())


@router.post("/{decision_id}/remediate", status_code=201)
async def remediate_decision(decision_id: str, body: RemediateIn, request: Request, who: Limited) -> Response:
    gate = request.app.state.plane.submit_gate
    submitted = await gate.remediate_decision(who.identity, who.tenant, decision_id, body.remediation_id)
    return submitted_response(submitted)

"""The step gate over HTTP: sessions, a proposed tool call's decision, its result (DESIGN.md
section 9). The gate itself is `control.steps.StepGate`; this module only maps bodies to it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from gatehouse.api.auth import Principal, authenticate, rate_limited
from gatehouse.api.body import StrictJSONRoute, openapi_body, parse
from gatehouse.api.errors import json_response
from gatehouse.api.schemas import SessionIn, StepIn, StepResultIn

router = APIRouter(prefix="/api/v1", tags=["steps"], route_class=StrictJSONRoute)
Auth = Annotated[Principal, Depends(authenticate)]
Limited = Annotated[Principal, Depends(rate_limited)]


@router.post("/sessions", status_code=201)
async def open_session(body: SessionIn, request: Request, who: Limited) -> Response:
    gate = request.app.state.plane.step_gate
    session = await gate.open_session(who.identity, who.tenant, session_id=body.session_id, task=body.task)
    return json_response({**session.to_public(), "steps": []}, 201)


_DETAIL = Query(
    description="`replay` (admins only): each step also carries its `params`, its kept untrusted "
    "`output`, `trusted` and the `job` fields it was judged with, for `gatehouse policy diff "
    "--decisions`; each such read is audited (`session.replay_read`)",
    max_length=64,
)


@router.get("/sessions/{session_id}")
async def get_session(
    session_id: str, request: Request, who: Auth, detail: Annotated[str | None, _DETAIL] = None
) -> Response:
    """A session, its steps and their decisions; `?detail=replay` for what replaying them needs."""
    gate = request.app.state.plane.step_gate
    return json_response(await gate.show(who.identity, who.tenant, session_id, detail=detail))


# The two routes every tool call passes are kept lean, as the submit route is: authentication
# and the rate limits, then the body from bytes to its model in one step, without FastAPI's
# dependency machinery (about a tenth of the route's CPU under load).
@router.post("/steps/evaluate", openapi_extra=openapi_body(StepIn))
async def evaluate_step(request: Request) -> Response:
    who = await rate_limited(request)
    body = await parse(request, StepIn)
    gate = request.app.state.plane.step_gate
    evaluated = await gate.evaluate(
        who.identity,
        who.tenant,
        session_id=body.session_id,
        job_id=body.job_id,
        step_id=body.step_id,
        adapter=body.adapter,
        action=body.action,
        params=body.params,
    )
    answer = evaluated.record.to_public()
    answer["replayed"] = evaluated.replayed
    return json_response(answer)


@router.post("/steps/result", openapi_extra=openapi_body(StepResultIn))
async def step_result(request: Request) -> Response:
    who = await rate_limited(request)
    body = await parse(request, StepResultIn)
    gate = request.app.state.plane.step_gate
    done = await gate.result(
        who.identity,
        who.tenant,
        session_id=body.session_id,
        job_id=body.job_id,
        step_id=body.step_id,
        status=body.status,
        output=body.output,
    )
    return json_response(done.to_public())

"""Jobs: submit (the submit gate), read, list, decisions, cancel, remediate."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from gatehouse.api.auth import Principal, authenticate, rate_limited
from gatehouse.api.body import StrictJSONRoute, openapi_body, parse
from gatehouse.api.errors import json_response
from gatehouse.api.params import Cursor, PageLimit
from gatehouse.api.schemas import JobIn, RemediateIn
from gatehouse.control.lookup import require_job
from gatehouse.control.submit import Submitted
from gatehouse.domain.states import STATES
from gatehouse.errors import BadRequest, Denied

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"], route_class=StrictJSONRoute)
Auth = Annotated[Principal, Depends(authenticate)]
Limited = Annotated[Principal, Depends(rate_limited)]


def submitted_response(s: Submitted) -> Response:
    decision = s.record.to_public()
    decision.pop("request", None)  # the caller's own body, kept in the decision log
    headers = {"Idempotent-Replayed": "true"} if s.replayed else None
    if not s.stored:
        # No job row was written: the answer names the decision (in the decision log), not a job.
        raise Denied(s.record.reason, details={"decision": decision, "derived": s.job.derived})
    body = {
        "job_id": s.job.id,
        "status": s.job.status,
        "decision": decision,
        "derived": s.job.derived,
    }
    if s.job.remediated_from:
        body["remediated_from"] = s.job.remediated_from
    return json_response(body, 200 if s.replayed else 201, headers)


_IDEMPOTENCY_HEADER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "maxLength": 128},
    "description": "the same key from the same identity returns the same job",
}


@router.post(
    "",
    status_code=201,
    openapi_extra={**openapi_body(JobIn), "parameters": [_IDEMPOTENCY_HEADER]},
)
async def submit_job(request: Request) -> Response:
    # The hot path, kept lean (DESIGN.md section 8): authentication and the rate limits, the
    # body from bytes to `JobIn` in one step, and one header, without the dependency machinery.
    who = await rate_limited(request)
    body = await parse(request, JobIn)
    idempotency_key = request.headers.get("idempotency-key")
    if idempotency_key is not None and not 0 < len(idempotency_key) <= 128:
        raise BadRequest(
            "the Idempotency-Key header must have 1 to 128 characters", code="invalid_idempotency_key"
        )
    gate = request.app.state.plane.submit_gate
    submitted = await gate.submit(who.identity, who.tenant, body.to_request(idempotency_key=idempotency_key))
    return submitted_response(submitted)


@router.get("")
async def list_jobs(
    request: Request,
    who: Auth,
    status: str | None = None,
    topic: str | None = None,
    limit: PageLimit = 50,
    cursor: Cursor = None,
) -> Response:
    if status is not None and status not in STATES:
        raise BadRequest(f"unknown status `{status}`", code="invalid_status")
    # A bad cursor is BadRequest(invalid_cursor) from the store itself (store/base.py).
    page = await request.app.state.store.list_jobs(
        who.tenant, status=status, topic=topic, limit=limit, cursor=cursor
    )
    return json_response({"jobs": [j.to_public() for j in page.jobs], "next_cursor": page.next_cursor})


@router.get("/{job_id}")
async def get_job(job_id: str, request: Request, who: Auth) -> Response:
    job = await require_job(request.app.state.store, job_id, who.tenant)
    return json_response(job.to_public())


@router.get("/{job_id}/decisions")
async def job_decisions(job_id: str, request: Request, who: Auth) -> Response:
    store = request.app.state.store
    await require_job(store, job_id, who.tenant)
    records = await store.decisions(job_id, who.tenant)
    return json_response({"job_id": job_id, "decisions": [r.to_public() for r in records]})


@router.post("/{job_id}/cancel")
async def cancel_job(job_id: str, request: Request, who: Auth) -> Response:
    job = await request.app.state.plane.submit_gate.cancel(who.identity, who.tenant, job_id)
    return json_response(job.to_public())


@router.post("/{job_id}/remediate", status_code=201)
async def remediate_job(job_id: str, body: RemediateIn, request: Request, who: Limited) -> Response:
    gate = request.app.state.plane.submit_gate
    return submitted_response(await gate.remediate(who.identity, who.tenant, job_id, body.remediation_id))

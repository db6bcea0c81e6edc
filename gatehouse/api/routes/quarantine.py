"""Quarantine: reviewers see held outputs (redacted) and release or discard them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from gatehouse.api.auth import Principal, authenticate
from gatehouse.api.body import StrictJSONRoute
from gatehouse.api.errors import json_response
from gatehouse.api.params import Cursor, PageLimit
from gatehouse.domain.ids import rfc3339
from gatehouse.domain.jobs import Job

router = APIRouter(prefix="/api/v1/quarantine", tags=["quarantine"], route_class=StrictJSONRoute)
Auth = Annotated[Principal, Depends(authenticate)]


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    comment: str = Field("", max_length=2000)


def held(job: Job) -> dict[str, Any]:
    gate = job.derived.get("output", {})
    return {
        "id": job.id,
        "job_id": job.id,
        "tenant": job.tenant,
        "topic": job.topic,
        "submitted_by": job.identity_id,
        "rule_id": gate.get("rule_id"),
        "reason": gate.get("reason"),
        "findings": gate.get("findings", []),
        "preview": gate.get("preview"),  # the output with every finding masked whole
        "preview_error": gate.get("preview_error"),  # the worker's error, likewise
        "worker_status": gate.get("worker_status"),
        "quarantined_at": rfc3339(job.updated_at),
    }


def _reviewer(who: Principal) -> None:
    who.require("reviewer")


@router.get("")
async def list_quarantine(
    request: Request,
    who: Auth,
    limit: PageLimit = 200,
    cursor: Cursor = None,
) -> Response:
    _reviewer(who)
    # Newest first, like the jobs list it is a view of; a bad cursor is the store's 422.
    page = await request.app.state.plane.outputs.quarantined(who.tenant, limit, cursor)
    return json_response({"quarantine": [held(j) for j in page.jobs], "next_cursor": page.next_cursor})


async def _review(
    request: Request, who: Principal, job_id: str, action: str, body: ReviewIn | None
) -> Response:
    _reviewer(who)
    gate = request.app.state.plane.outputs
    comment = body.comment if body is not None else ""
    op = gate.release if action == "release" else gate.discard
    moved = await op(who.identity, who.tenant, job_id, comment)
    return json_response(moved.to_public())


@router.post("/{job_id}/release")
async def release(job_id: str, request: Request, who: Auth, body: ReviewIn | None = None) -> Response:
    return await _review(request, who, job_id, "release", body)


@router.post("/{job_id}/discard")
async def discard(job_id: str, request: Request, who: Auth, body: ReviewIn | None = None) -> Response:
    return await _review(request, who, job_id, "discard", body)

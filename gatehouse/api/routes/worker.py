"""Workers: lease jobs (through the dispatch gate) and report results."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from gatehouse.api.auth import Principal, authenticate
from gatehouse.api.body import StrictJSONRoute
from gatehouse.api.errors import json_response
from gatehouse.api.schemas import LeaseIn, ResultIn
from gatehouse.domain.ids import rfc3339

router = APIRouter(prefix="/api/v1/worker", tags=["worker"], route_class=StrictJSONRoute)
Auth = Annotated[Principal, Depends(authenticate)]


class HeartbeatIn(BaseModel):
    lease_seconds: int = Field(60, ge=1, le=3600)


@router.post("/lease")
async def lease(body: LeaseIn, request: Request, who: Auth) -> Response:
    who.require("worker")
    jobs = await request.app.state.plane.leases.lease(
        owner=who.identity.id,
        topics=body.topics,
        max_jobs=body.max_jobs,
        lease_seconds=body.lease_seconds,
        worker=who.identity,
        tenant=who.tenant,
        wait_seconds=body.wait_seconds,
    )
    return json_response(
        {
            "jobs": [
                {
                    "job_id": j.id,
                    "topic": j.topic,
                    "prompt": j.prompt,
                    "labels": j.labels,
                    "meta": j.meta,
                    "attachments": j.attachments,
                    "tenant": j.tenant,
                    "lease_expires_at": rfc3339(j.lease_expires_at),
                }
                for j in jobs
            ]
        }
    )


@router.post("/jobs/{job_id}/heartbeat")
async def heartbeat(job_id: str, body: HeartbeatIn, request: Request, who: Auth) -> Response:
    who.require("worker")
    job = await request.app.state.plane.leases.heartbeat(
        owner=who.identity.id, job_id=job_id, lease_seconds=body.lease_seconds, tenant=who.tenant
    )
    return json_response(job.to_public())


@router.post("/jobs/{job_id}/result")
async def result(job_id: str, body: ResultIn, request: Request, who: Auth) -> Response:
    who.require("worker")
    job = await request.app.state.plane.leases.finish(
        owner=who.identity.id,
        job_id=job_id,
        status=body.status,
        output=body.output,
        error=body.error,
        tenant=who.tenant,
    )
    return json_response(job.to_public())

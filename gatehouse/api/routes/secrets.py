"""Secrets over HTTP (admin): set, list, show and delete by name. No route returns a value: the
broker alone reveals one, into an outbound request (`broker.secrets`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from gatehouse.api.auth import Principal, authenticate
from gatehouse.api.body import StrictJSONRoute
from gatehouse.api.errors import json_response

router = APIRouter(prefix="/api/v1/secrets", tags=["secrets"], route_class=StrictJSONRoute)
Auth = Annotated[Principal, Depends(authenticate)]


class SecretIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: str = Field(description="the secret; stored sealed, never shown again")


@router.put("/{name}")
async def put_secret(name: str, body: SecretIn, request: Request, who: Auth) -> Response:
    who.require("admin")
    stored, created = await request.app.state.plane.secrets.put(who.identity, who.tenant, name, body.value)
    return json_response(stored.to_public(), 201 if created else 200)


@router.get("")
async def list_secrets(request: Request, who: Auth) -> Response:
    who.require("admin")
    found = await request.app.state.plane.secrets.list(who.tenant)
    return json_response({"secrets": [s.to_public() for s in found]})


@router.get("/{name}")
async def get_secret(name: str, request: Request, who: Auth) -> Response:
    who.require("admin")
    return json_response((await request.app.state.plane.secrets.get(who.tenant, name)).to_public())


@router.delete("/{name}")
async def delete_secret(name: str, request: Request, who: Auth) -> Response:
    who.require("admin")
    await request.app.state.plane.secrets.delete(who.tenant, name)
    return json_response({"name": name, "deleted": True})

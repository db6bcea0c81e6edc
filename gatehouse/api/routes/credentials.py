"""Minted credentials over HTTP: the public keys (JWKS), introspection (RFC 7662) and
revocation (admin). Minting happens inside the broker, per execution; no route mints."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.responses import Response

from gatehouse.api.auth import Principal, authenticate
from gatehouse.api.body import StrictJSONRoute
from gatehouse.api.errors import json_response

router = APIRouter(tags=["credentials"], route_class=StrictJSONRoute)
Auth = Annotated[Principal, Depends(authenticate)]


class IntrospectIn(BaseModel):
    model_config = ConfigDict(extra="ignore")  # RFC 7662 lets a caller send `token_type_hint`
    token: Any = Field(description="the token to check")


class RevokeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    jti: str | None = Field(None, min_length=1, max_length=128)
    adapter: str | None = Field(None, min_length=1, max_length=128)
    session_id: str | None = Field(None, min_length=1, max_length=128)

    @model_validator(mode="after")
    def _one(self) -> RevokeIn:
        if sum(v is not None for v in (self.jti, self.adapter, self.session_id)) != 1:
            raise ValueError("give exactly one of jti, adapter or session_id")
        return self


@router.get("/.well-known/jwks.json")
async def jwks(request: Request) -> Response:
    # Public and unauthenticated: a target service verifies tokens with these keys.
    body = request.app.state.plane.credentials.jwks()
    return json_response(body, headers={"Cache-Control": "public, max-age=300"})


@router.post("/api/v1/credentials/introspect")
async def introspect(body: IntrospectIn, request: Request) -> Response:
    # Unauthenticated on purpose: the target service holding a token asks. The answer says no
    # more than the token itself does (its claims are readable by whoever holds it), plus
    # whether it is live; an inactive answer never says why.
    answer = await request.app.state.plane.credentials.introspect(body.token)
    return json_response(answer, headers={"Cache-Control": "no-store"})


@router.post("/api/v1/credentials/revoke")
async def revoke(body: RevokeIn, request: Request, who: Auth) -> Response:
    who.require("admin")
    revoked = await request.app.state.plane.credentials.revoke(
        who.identity, who.tenant, jti=body.jti, adapter=body.adapter, session_id=body.session_id
    )
    return json_response({"revoked": len(revoked), "jtis": [c.jti for c in revoked]})

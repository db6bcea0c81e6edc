"""Identities: admins create, list and revoke API keys."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from gatehouse.api.auth import Principal, authenticate
from gatehouse.api.body import StrictJSONRoute
from gatehouse.api.errors import json_response
from gatehouse.api.params import Cursor, PageLimit
from gatehouse.api.ratelimit import parse_limit
from gatehouse.api.schemas import IdentityIn
from gatehouse.domain.ids import rfc3339

router = APIRouter(prefix="/api/v1/identities", tags=["identities"], route_class=StrictJSONRoute)
Auth = Annotated[Principal, Depends(authenticate)]


@router.post("", status_code=201)
async def create_identity(body: IdentityIn, request: Request, who: Auth) -> Response:
    who.require("admin")
    identities = request.app.state.plane.identities
    if body.rate_limit is not None:
        parse_limit(body.rate_limit)  # the rate limit is HTTP's business: checked here
    identity, key = await identities.create(
        who.identity,
        name=body.name,
        tenant=body.tenant,
        roles=body.roles,
        topics=body.topics,
        capabilities=body.capabilities,
        adapters=body.adapters,
        rate_limit=body.rate_limit,
    )
    # The key is in this response and nowhere else: only its hash is stored.
    return json_response({**identity.to_public(), "api_key": key}, 201)


@router.get("")
async def list_identities(
    request: Request,
    who: Auth,
    limit: PageLimit = 200,
    cursor: Cursor = None,
) -> Response:
    # A global admin sees every tenant's identities, or, naming one with X-Tenant-ID, that one's.
    named = request.headers.get("x-tenant-id") or None
    page = await request.app.state.plane.identities.page(who.identity, named, limit=limit, cursor=cursor)
    return json_response({"identities": [i.to_public() for i in page.items], "next_cursor": page.next_cursor})


@router.delete("/{identity_id}")
async def revoke_identity(identity_id: str, request: Request, who: Auth) -> Response:
    revoked = await request.app.state.plane.identities.revoke(who.identity, identity_id)
    return json_response({**revoked.to_public(), "revoked_at": rfc3339(revoked.revoked_at)})

"""Identities: admins create, list and revoke API keys."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from gatehouse.api.auth import Principal, authenticate
from gatehouse.api.body import StrictJSONRoute
from gatehouse.api.errors import json_response
from gatehouse.api.ratelimit import parse_limit
from gatehouse.api.schemas import IdentityIn
from gatehouse.domain.identity import Identity, hash_key, new_api_key, validate_scope
from gatehouse.domain.ids import new_id, now, rfc3339
from gatehouse.errors import NotFound

router = APIRouter(prefix="/api/v1/identities", tags=["identities"], route_class=StrictJSONRoute)
Auth = Annotated[Principal, Depends(authenticate)]


@router.post("", status_code=201)
async def create_identity(body: IdentityIn, request: Request, who: Auth) -> Response:
    who.require("admin")
    validate_scope(
        name=body.name,
        tenant=body.tenant,
        roles=body.roles,
        topics=body.topics,
        capabilities=body.capabilities,
    )
    if body.rate_limit is not None:
        parse_limit(body.rate_limit)
    key = new_api_key()
    identity = Identity(
        id=new_id("idn"),
        name=body.name,
        tenant=body.tenant,
        roles=tuple(dict.fromkeys(body.roles)),
        topics=tuple(body.topics),
        capabilities=tuple(body.capabilities),
        created_at=now(),
        created_by=who.identity.id,
        rate_limit=body.rate_limit,
    )
    await request.app.state.store.add_identity(identity, hash_key(key))
    # The key is in this response and nowhere else: only its hash is stored.
    return json_response({**identity.to_public(), "api_key": key}, 201)


@router.get("")
async def list_identities(request: Request, who: Auth) -> Response:
    who.require("admin")
    identities = await request.app.state.store.list_identities(None)
    return json_response({"identities": [i.to_public() for i in identities]})


@router.delete("/{identity_id}")
async def revoke_identity(identity_id: str, request: Request, who: Auth) -> Response:
    who.require("admin")
    store = request.app.state.store
    identity = await store.get_identity(identity_id)
    if identity is None:
        raise NotFound(f"no identity `{identity_id}`", code="identity_not_found")
    at = now()
    await store.revoke_identity(identity_id, at)
    await request.app.state.plane.bus.publish("identity.revoked", {"id": identity_id})
    current = await store.get_identity(identity_id)
    return json_response({**current.to_public(), "revoked_at": rfc3339(current.revoked_at)})

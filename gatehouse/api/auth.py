"""Authentication (X-API-Key) and tenant resolution (X-Tenant-ID)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from gatehouse.api.ratelimit import parse_limit
from gatehouse.audit.events import current_actor
from gatehouse.domain.identity import Identity, hash_key
from gatehouse.errors import Forbidden, Unauthorized

__all__ = ["Principal", "authenticate", "rate_limited", "require_role"]


@dataclass(frozen=True, slots=True)
class Principal:
    identity: Identity
    tenant: str

    def require(self, *roles: str) -> None:
        require_role(self.identity, *roles)


def require_role(identity: Identity, *roles: str) -> None:
    if not identity.has_role(*roles, "admin"):
        raise Forbidden(
            f"identity `{identity.name}` needs one of the roles {', '.join(roles)}",
            code="missing_role",
        )


async def rate_limited(request: Request) -> Principal:
    """`authenticate`, then the caller's token buckets (agent-facing routes)."""
    who = await authenticate(request)
    limiter = request.app.state.limiter
    override = parse_limit(who.identity.rate_limit) if who.identity.rate_limit else None
    limiter.check(who.identity.id, who.tenant, override)
    return who


async def authenticate(request: Request) -> Principal:
    key = request.headers.get("x-api-key")
    if not key:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            key = auth[7:].strip()
    if not key:
        raise Unauthorized("an API key is required (X-API-Key header)", code="missing_api_key")
    identity = await request.app.state.store.identity_by_key_hash(hash_key(key))
    if identity is None:
        raise Unauthorized("the API key is not valid", code="invalid_api_key")
    if identity.revoked_at is not None:
        raise Unauthorized("the API key was revoked", code="revoked_api_key")
    contained = request.app.state.plane.incidents.identity(identity.id)
    if contained is not None:
        raise Forbidden(
            f"identity `{identity.name}` is contained (incident {contained.id}): {contained.reason}",
            code="identity_contained",
            details={"incident": contained.id},
        )
    tenant = request.headers.get("x-tenant-id") or identity.tenant
    if tenant != identity.tenant and not identity.is_admin:
        raise Forbidden(f"X-Tenant-ID `{tenant}` is not the tenant of this key", code="tenant_mismatch")
    current_actor.set(identity.id)
    return Principal(identity=identity, tenant=tenant)

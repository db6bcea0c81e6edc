"""Authentication: an API key and an optional tenant header -> the acting `Principal`.

Transport-neutral, so every edge authenticates the same way: the HTTP API (`api/auth.py` reads
the headers and calls `authenticate`), and the MCP gateway next. Order: the key must be known
and not revoked (401 `invalid_api_key` for both), its identity not contained (403
`identity_contained`, checked from memory), and the tenant asked for must be the key's own
unless the identity is a global admin (`Identity.may_act_in`).
"""

from __future__ import annotations

from dataclasses import dataclass

from gatehouse.audit.events import current_actor
from gatehouse.control.incidents import Incidents
from gatehouse.domain.identity import Identity, hash_key
from gatehouse.errors import Forbidden, Unauthorized
from gatehouse.store import Store

__all__ = ["Authenticator", "Principal"]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is acting, and for which tenant (an admin may act for another)."""

    identity: Identity
    tenant: str

    def require(self, *roles: str) -> None:
        self.identity.require_role(*roles)


class Authenticator:
    def __init__(self, *, store: Store, incidents: Incidents) -> None:
        self.store = store
        self.incidents = incidents

    async def authenticate(self, api_key: str | None, tenant: str | None = None) -> Principal:
        if not api_key:
            raise Unauthorized("an API key is required (X-API-Key header)", code="missing_api_key")
        identity = await self.store.identity_by_key_hash(hash_key(api_key))
        if identity is None or identity.revoked_at is not None:
            # One answer for a key never issued and a revoked one: telling them apart would tell
            # a caller that a key string it holds once was valid (the audit log has the detail).
            raise Unauthorized("the API key is not valid", code="invalid_api_key")
        contained = self.incidents.identity(identity.id)
        if contained is not None:
            raise Forbidden(
                f"identity `{identity.name}` is contained (incident {contained.id}): {contained.reason}",
                code="identity_contained",
                details={"incident": contained.id},
            )
        tenant = tenant or identity.home_tenant
        if not identity.may_act_in(tenant):
            # Only a global admin acts for another tenant; an admin of one tenant administers
            # that tenant alone.
            raise Forbidden(f"X-Tenant-ID `{tenant}` is not the tenant of this key", code="tenant_mismatch")
        # Everything this request writes to the audit log names this identity as its actor.
        current_actor.set(identity.id)
        return Principal(identity=identity, tenant=tenant)

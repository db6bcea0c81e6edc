"""Identities: admins create, list and revoke API keys."""

from __future__ import annotations

from collections.abc import Sequence

from gatehouse.bus.subjects import IDENTITY_REVOKED
from gatehouse.control.deps import Deps
from gatehouse.domain.identity import Identity, hash_key, new_api_key, validate_scope
from gatehouse.domain.ids import new_id, now
from gatehouse.errors import NotFound

__all__ = ["Identities"]


class Identities:
    def __init__(self, *, deps: Deps) -> None:
        self.store = deps.store
        self.bus = deps.bus

    async def create(
        self,
        who: Identity,
        *,
        name: str,
        tenant: str,
        roles: Sequence[str],
        topics: Sequence[str],
        capabilities: Sequence[str],
        rate_limit: str | None,
    ) -> tuple[Identity, str]:
        """The new identity and its API key: the key is returned here and nowhere else (only its
        hash is stored). The caller checks `rate_limit` is well formed."""
        who.require_role("admin")
        validate_scope(name=name, tenant=tenant, roles=roles, topics=topics, capabilities=capabilities)
        key = new_api_key()
        identity = Identity(
            id=new_id("idn"),
            name=name,
            tenant=tenant,
            roles=tuple(dict.fromkeys(roles)),
            topics=tuple(topics),
            capabilities=tuple(capabilities),
            created_at=now(),
            created_by=who.id,
            rate_limit=rate_limit,
        )
        await self.store.add_identity(identity, hash_key(key))
        return identity, key

    async def list(self, who: Identity) -> list[Identity]:
        who.require_role("admin")
        return await self.store.list_identities(None)

    async def revoke(self, who: Identity, identity_id: str) -> Identity:
        who.require_role("admin")
        if await self.store.get_identity(identity_id) is None:
            raise NotFound(f"no identity `{identity_id}`", code="identity_not_found")
        await self.store.revoke_identity(identity_id, now())
        await self.bus.publish(IDENTITY_REVOKED, {"id": identity_id})
        revoked = await self.store.get_identity(identity_id)
        assert revoked is not None  # revoking keeps the row
        return revoked

"""Identities and incident containments in the PostgreSQL driver.

API key lookups are cached for two seconds (`_keycache`): a revocation through this replica is
seen at once, one through another replica within that time (and at once where the bus carries
its `identity.revoked` broadcast).
"""

from __future__ import annotations

import asyncpg

from gatehouse.audit.events import (
    contained_event,
    identity_created_event,
    identity_revoked_event,
    lifted_event,
)
from gatehouse.domain.containment import Containment
from gatehouse.domain.identity import Identity
from gatehouse.errors import Conflict
from gatehouse.store.base import ContainmentStore, IdentityStore
from gatehouse.store.postgres.connection import PostgresBase
from gatehouse.store.postgres.rows import placeholders
from gatehouse.store.sqlite import rows

__all__ = ["PostgresContainments", "PostgresIdentities"]

_IDENTITIES = f"SELECT {rows.IDENTITY_COLUMNS} FROM identities"
_CONTAINMENTS = f"SELECT {rows.CONTAINMENT_COLUMNS} FROM containments"


class PostgresIdentities(PostgresBase, IdentityStore):
    async def add_identity(self, identity: Identity, key_hash: str) -> None:
        async def add(conn: asyncpg.Connection) -> None:
            await conn.execute(
                "INSERT INTO identities (id, name, tenant, roles, topics, capabilities, key_hash, "
                f"created_at, created_by, revoked_at, rate_limit, adapters) VALUES ({placeholders(12)})",
                identity.id,
                identity.name,
                identity.tenant,
                rows.dumps(list(identity.roles)),
                rows.dumps(list(identity.topics)),
                rows.dumps(list(identity.capabilities)),
                key_hash,
                identity.created_at,
                identity.created_by,
                identity.revoked_at,
                identity.rate_limit,
                rows.dumps(list(identity.adapters)),
            )
            await self._append_audit(conn, [identity_created_event(identity)])

        await self._write(add)

    async def identity_by_key_hash(self, key_hash: str) -> Identity | None:
        cached = self._keys.get(key_hash)
        if cached is not None:
            return cached
        row = await self._fetchrow(f"{_IDENTITIES} WHERE key_hash = $1", key_hash)
        if row is None:
            return None
        identity = rows.identity(row)
        self._keys.put(key_hash, identity)
        return identity

    async def get_identity(self, identity_id: str) -> Identity | None:
        row = await self._fetchrow(f"{_IDENTITIES} WHERE id = $1", identity_id)
        return rows.identity(row) if row else None

    async def list_identities(self, tenant: str | None) -> list[Identity]:
        if tenant is None:
            found = await self._fetch(f"{_IDENTITIES} ORDER BY created_at, seq")
        else:
            found = await self._fetch(f"{_IDENTITIES} WHERE tenant = $1 ORDER BY created_at, seq", tenant)
        return [rows.identity(r) for r in found]

    async def revoke_identity(self, identity_id: str, at: float) -> bool:
        async def revoke(conn: asyncpg.Connection) -> bool:
            done = await conn.execute(
                "UPDATE identities SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL", at, identity_id
            )
            if done != "UPDATE 1":
                return False
            await self._append_audit(conn, [identity_revoked_event(identity_id)])
            return True

        revoked = await self._write(revoke)
        self._keys.forget(identity_id)  # after the commit: the next lookup reads it revoked
        return revoked


class PostgresContainments(PostgresBase, ContainmentStore):
    async def add_containment(self, containment: Containment) -> None:
        c = containment

        async def add(conn: asyncpg.Connection) -> None:
            await conn.execute(
                f"INSERT INTO containments ({rows.CONTAINMENT_COLUMNS}) VALUES ({placeholders(8)})",
                c.id,
                c.kind,
                c.target,
                c.reason,
                c.created_at,
                c.created_by,
                c.lifted_at,
                c.lifted_by,
            )
            await self._append_audit(conn, [contained_event(c)])

        try:
            await self._write(add)
        except asyncpg.UniqueViolationError:
            raise Conflict(f"{c.kind} `{c.target}` is already contained", code="already_contained") from None

    async def lift_containment(self, containment_id: str, *, at: float, by: str) -> Containment | None:
        async def lift(conn: asyncpg.Connection) -> Containment | None:
            row = await conn.fetchrow(
                "UPDATE containments SET lifted_at = $1, lifted_by = $2 WHERE id = $3 AND lifted_at IS NULL "
                f"RETURNING {rows.CONTAINMENT_COLUMNS}",
                at,
                by,
                containment_id,
            )
            if row is None:
                return None
            lifted = rows.containment(row)
            await self._append_audit(conn, [lifted_event(lifted)])
            return lifted

        return await self._write(lift)

    async def containments(self, *, active_only: bool) -> list[Containment]:
        sql = _CONTAINMENTS + (" WHERE lifted_at IS NULL" if active_only else "")
        return [rows.containment(r) for r in await self._fetch(sql + " ORDER BY created_at, seq")]

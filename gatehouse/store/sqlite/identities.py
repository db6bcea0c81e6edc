"""Identities and incident containments in the SQLite driver."""

from __future__ import annotations

import sqlite3

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
from gatehouse.store.sqlite import rows
from gatehouse.store.sqlite.connection import SQLiteBase

__all__ = ["SQLiteContainments", "SQLiteIdentities"]


class SQLiteIdentities(SQLiteBase, IdentityStore):
    async def add_identity(self, identity: Identity, key_hash: str) -> None:
        await self._write(lambda db: self._add_identity(db, identity, key_hash))

    def _add_identity(self, db: sqlite3.Connection, identity: Identity, key_hash: str) -> None:
        db.execute(
            "INSERT INTO identities (id, name, tenant, roles, topics, capabilities, key_hash, "
            "created_at, created_by, revoked_at, rate_limit, adapters) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
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
            ),
        )
        self._append_audit(db, [identity_created_event(identity)])

    async def identity_by_key_hash(self, key_hash: str) -> Identity | None:
        cached = self._keys.get(key_hash)
        if cached is not None:
            return cached
        row = self.db.execute(
            f"SELECT {rows.IDENTITY_COLUMNS} FROM identities WHERE key_hash = ?", (key_hash,)
        ).fetchone()
        if row is None:
            return None
        identity = rows.identity(row)
        self._keys.put(key_hash, identity)
        return identity

    async def get_identity(self, identity_id: str) -> Identity | None:
        row = self.db.execute(
            f"SELECT {rows.IDENTITY_COLUMNS} FROM identities WHERE id = ?", (identity_id,)
        ).fetchone()
        return rows.identity(row) if row else None

    async def list_identities(self, tenant: str | None) -> list[Identity]:
        sql = f"SELECT {rows.IDENTITY_COLUMNS} FROM identities"
        if tenant is None:
            found = self.db.execute(sql + " ORDER BY created_at")
        else:
            found = self.db.execute(sql + " WHERE tenant = ? ORDER BY created_at", (tenant,))
        return [rows.identity(r) for r in found.fetchall()]

    async def revoke_identity(self, identity_id: str, at: float) -> bool:
        def revoke(db: sqlite3.Connection) -> bool:
            cur = db.execute(
                "UPDATE identities SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (at, identity_id),
            )
            if cur.rowcount == 1:
                self._append_audit(db, [identity_revoked_event(identity_id)])
            return cur.rowcount == 1

        revoked = await self._write(revoke)
        # Forget the key once the revocation is committed: the next lookup reads it revoked.
        self._keys.forget(identity_id)
        return revoked


class SQLiteContainments(SQLiteBase, ContainmentStore):
    async def add_containment(self, containment: Containment) -> None:
        c = containment

        def add(db: sqlite3.Connection) -> None:
            db.execute(
                f"INSERT INTO containments ({rows.CONTAINMENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)",
                (c.id, c.kind, c.target, c.reason, c.created_at, c.created_by, c.lifted_at, c.lifted_by),
            )
            self._append_audit(db, [contained_event(c)])

        try:
            await self._write(add)
        except sqlite3.IntegrityError:
            raise Conflict(f"{c.kind} `{c.target}` is already contained", code="already_contained") from None

    async def lift_containment(self, containment_id: str, *, at: float, by: str) -> Containment | None:
        def lift(db: sqlite3.Connection) -> Containment | None:
            cur = db.execute(
                "UPDATE containments SET lifted_at = ?, lifted_by = ? WHERE id = ? AND lifted_at IS NULL",
                (at, by, containment_id),
            )
            if cur.rowcount != 1:
                return None
            row = db.execute(
                f"SELECT {rows.CONTAINMENT_COLUMNS} FROM containments WHERE id = ?", (containment_id,)
            ).fetchone()
            lifted = rows.containment(row)
            self._append_audit(db, [lifted_event(lifted)])
            return lifted

        return await self._write(lift)

    async def containments(self, *, active_only: bool) -> list[Containment]:
        sql = f"SELECT {rows.CONTAINMENT_COLUMNS} FROM containments"
        if active_only:
            sql += " WHERE lifted_at IS NULL"
        return [rows.containment(r) for r in self.db.execute(sql + " ORDER BY created_at").fetchall()]

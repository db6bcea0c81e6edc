"""The broker's concerns in the SQLite driver: sealed secrets and minted credentials."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from typing import Any

from gatehouse.audit.events import (
    credential_issued_event,
    credentials_revoked_event,
    secret_deleted_event,
    secret_set_event,
)
from gatehouse.domain.credentials import IssuedCredential
from gatehouse.domain.secrets import StoredSecret
from gatehouse.errors import Conflict
from gatehouse.store.base import CredentialStore, SecretStore
from gatehouse.store.sqlite.connection import SQLiteBase

__all__ = ["SQLiteCredentials", "SQLiteSecrets"]

_SECRET = "tenant, name, nonce, ciphertext, created_at, updated_at, created_by, updated_by"
_CREDENTIAL = (
    "jti, tenant, adapter, session_id, identity_id, target, audience, issued_at, expires_at, revoked_at"
)


def _secret(row: tuple[Any, ...]) -> StoredSecret:
    tenant, name, nonce, ciphertext, created_at, updated_at, created_by, updated_by = row
    return StoredSecret(tenant=tenant, name=name, nonce=bytes(nonce), ciphertext=bytes(ciphertext),
                        created_at=created_at, updated_at=updated_at, created_by=created_by,
                        updated_by=updated_by)  # fmt: skip


def _credential(row: tuple[Any, ...]) -> IssuedCredential:
    return IssuedCredential(*row)


class SQLiteSecrets(SQLiteBase, SecretStore):
    async def put_secret(self, secret: StoredSecret) -> StoredSecret:
        s = secret

        def put(db: sqlite3.Connection) -> StoredSecret:
            created = (
                db.execute(
                    "UPDATE secrets SET nonce = ?, ciphertext = ?, updated_at = ?, updated_by = ? "
                    "WHERE tenant = ? AND name = ?",
                    (s.nonce, s.ciphertext, s.updated_at, s.updated_by, s.tenant, s.name),
                ).rowcount
                == 0
            )
            if created:
                db.execute(
                    f"INSERT INTO secrets ({_SECRET}) VALUES (?,?,?,?,?,?,?,?)",
                    (s.tenant, s.name, s.nonce, s.ciphertext, s.created_at, s.updated_at, s.created_by,
                     s.updated_by),
                )  # fmt: skip
            self._append_audit(db, [secret_set_event(s.tenant, s.name, created=created)])
            row = db.execute(
                f"SELECT {_SECRET} FROM secrets WHERE tenant = ? AND name = ?", (s.tenant, s.name)
            ).fetchone()
            return _secret(row)

        return await self._write(put)

    async def get_secret(self, tenant: str, name: str) -> StoredSecret | None:
        row = self.db.execute(
            f"SELECT {_SECRET} FROM secrets WHERE tenant = ? AND name = ?", (tenant, name)
        ).fetchone()
        return _secret(row) if row else None

    async def list_secrets(self, tenant: str) -> list[StoredSecret]:
        found = self.db.execute(f"SELECT {_SECRET} FROM secrets WHERE tenant = ? ORDER BY name", (tenant,))
        return [_secret(r) for r in found.fetchall()]

    async def delete_secret(self, tenant: str, name: str) -> bool:
        def delete(db: sqlite3.Connection) -> bool:
            gone = db.execute("DELETE FROM secrets WHERE tenant = ? AND name = ?", (tenant, name)).rowcount
            if gone:
                self._append_audit(db, [secret_deleted_event(tenant, name)])
            return bool(gone)

        return await self._write(delete)


class SQLiteCredentials(SQLiteBase, CredentialStore):
    async def add_credential(self, credential: IssuedCredential) -> None:
        c = credential

        def add(db: sqlite3.Connection) -> None:
            db.execute(
                f"INSERT INTO credentials ({_CREDENTIAL}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (c.jti, c.tenant, c.adapter, c.session_id, c.identity_id, c.target, c.audience, c.issued_at,
                 c.expires_at, c.revoked_at),
            )  # fmt: skip
            self._append_audit(db, [credential_issued_event(c)])

        try:
            await self._write(add)
        except sqlite3.IntegrityError:
            raise Conflict(f"credential `{c.jti}` exists already", code="duplicate_credential") from None

    async def get_credential(self, jti: str) -> IssuedCredential | None:
        row = self.db.execute(f"SELECT {_CREDENTIAL} FROM credentials WHERE jti = ?", (jti,)).fetchone()
        return _credential(row) if row else None

    async def revoke_credentials(
        self,
        *,
        at: float,
        tenant: str | None,
        jti: str | None = None,
        adapter: str | None = None,
        session_id: str | None = None,
    ) -> list[IssuedCredential]:
        where = ["revoked_at IS NULL", "expires_at > ?"]
        args: list[Any] = [at]
        for column, value in (
            ("tenant", tenant),
            ("jti", jti),
            ("adapter", adapter),
            ("session_id", session_id),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        by = {
            k: v for k, v in (("jti", jti), ("adapter", adapter), ("session_id", session_id)) if v is not None
        }

        sql = f"SELECT {_CREDENTIAL} FROM credentials WHERE {' AND '.join(where)} ORDER BY issued_at, jti"

        def revoke(db: sqlite3.Connection) -> list[IssuedCredential]:
            found = [_credential(r) for r in db.execute(sql, args).fetchall()]
            for c in found:
                db.execute("UPDATE credentials SET revoked_at = ? WHERE jti = ?", (at, c.jti))
            tenants = sorted({c.tenant for c in found})
            if tenants:
                self._append_audit(
                    db,
                    [
                        credentials_revoked_event(t, [c.jti for c in found if c.tenant == t], by=by)
                        for t in tenants
                    ],
                )
            return [replace(c, revoked_at=at) for c in found]

        return await self._write(revoke)

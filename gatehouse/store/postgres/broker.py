"""The broker's concerns in the PostgreSQL driver: sealed secrets and minted credentials."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import asyncpg

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
from gatehouse.store.postgres.connection import PostgresBase
from gatehouse.store.postgres.rows import Args, placeholders

__all__ = ["PostgresCredentials", "PostgresSecrets"]

_SECRET = "tenant, name, nonce, ciphertext, created_at, updated_at, created_by, updated_by"
_CREDENTIAL = (
    "jti, tenant, adapter, session_id, identity_id, target, audience, issued_at, expires_at, revoked_at"
)


def _secret(row: Any) -> StoredSecret:
    tenant, name, nonce, ciphertext, created_at, updated_at, created_by, updated_by = row
    return StoredSecret(tenant=tenant, name=name, nonce=bytes(nonce), ciphertext=bytes(ciphertext),
                        created_at=created_at, updated_at=updated_at, created_by=created_by,
                        updated_by=updated_by)  # fmt: skip


def _credential(row: Any) -> IssuedCredential:
    return IssuedCredential(*row)


class PostgresSecrets(PostgresBase, SecretStore):
    async def put_secret(self, secret: StoredSecret) -> StoredSecret:
        s = secret

        async def put(conn: asyncpg.Connection) -> StoredSecret:
            # One statement creates or replaces; `xmax = 0` tells a row just inserted from one
            # updated (a replacement keeps its first created_at and created_by).
            row = await conn.fetchrow(
                f"INSERT INTO secrets ({_SECRET}) VALUES ({placeholders(8)}) "
                "ON CONFLICT (tenant, name) DO UPDATE SET nonce = EXCLUDED.nonce, "
                "ciphertext = EXCLUDED.ciphertext, updated_at = EXCLUDED.updated_at, "
                f"updated_by = EXCLUDED.updated_by RETURNING {_SECRET}, (xmax = 0) AS created",
                s.tenant, s.name, s.nonce, s.ciphertext, s.created_at, s.updated_at, s.created_by,
                s.updated_by,
            )  # fmt: skip
            await self._append_audit(conn, [secret_set_event(s.tenant, s.name, created=bool(row["created"]))])
            return _secret(tuple(row)[:8])

        return await self._write(put)

    async def get_secret(self, tenant: str, name: str) -> StoredSecret | None:
        row = await self._fetchrow(
            f"SELECT {_SECRET} FROM secrets WHERE tenant = $1 AND name = $2", tenant, name
        )
        return _secret(row) if row else None

    async def list_secrets(self, tenant: str) -> list[StoredSecret]:
        found = await self._fetch(f"SELECT {_SECRET} FROM secrets WHERE tenant = $1 ORDER BY name", tenant)
        return [_secret(r) for r in found]

    async def delete_secret(self, tenant: str, name: str) -> bool:
        async def delete(conn: asyncpg.Connection) -> bool:
            done = await conn.execute("DELETE FROM secrets WHERE tenant = $1 AND name = $2", tenant, name)
            if done != "DELETE 1":
                return False
            await self._append_audit(conn, [secret_deleted_event(tenant, name)])
            return True

        return await self._write(delete)


class PostgresCredentials(PostgresBase, CredentialStore):
    async def add_credential(self, credential: IssuedCredential) -> None:
        c = credential

        async def add(conn: asyncpg.Connection) -> None:
            await conn.execute(
                f"INSERT INTO credentials ({_CREDENTIAL}) VALUES ({placeholders(10)})",
                c.jti, c.tenant, c.adapter, c.session_id, c.identity_id, c.target, c.audience, c.issued_at,
                c.expires_at, c.revoked_at,
            )  # fmt: skip
            await self._append_audit(conn, [credential_issued_event(c)])

        try:
            await self._write(add)
        except asyncpg.UniqueViolationError:
            raise Conflict(f"credential `{c.jti}` exists already", code="duplicate_credential") from None

    async def get_credential(self, jti: str) -> IssuedCredential | None:
        row = await self._fetchrow(f"SELECT {_CREDENTIAL} FROM credentials WHERE jti = $1", jti)
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
        args = Args(at)
        where = ["revoked_at IS NULL", "expires_at > $1"]
        for column, value in (
            ("tenant", tenant),
            ("jti", jti),
            ("adapter", adapter),
            ("session_id", session_id),
        ):
            if value is not None:
                where.append(f"{column} = {args.add(value)}")
        by = {
            k: v for k, v in (("jti", jti), ("adapter", adapter), ("session_id", session_id)) if v is not None
        }
        # One UPDATE revokes: a credential two replicas revoke at once is revoked (and reported) once.
        sql = f"UPDATE credentials SET revoked_at = $1 WHERE {' AND '.join(where)} RETURNING {_CREDENTIAL}"

        async def revoke(conn: asyncpg.Connection) -> list[IssuedCredential]:
            found = sorted(
                (_credential(r) for r in await conn.fetch(sql, *args.values)),
                key=lambda c: (c.issued_at, c.jti),
            )
            tenants = sorted({c.tenant for c in found})
            if tenants:
                await self._append_audit(
                    conn,
                    [
                        credentials_revoked_event(t, [c.jti for c in found if c.tenant == t], by=by)
                        for t in tenants
                    ],
                )
            return [replace(c, revoked_at=at) for c in found]

        return await self._write(revoke)

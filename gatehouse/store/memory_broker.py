"""The broker's concerns (secrets, minted credentials) of `MemoryStore`, with the drivers'
semantics: each write yields once, then checks, changes and appends its audit entry without
awaiting (see `memory`'s theory of operation)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from gatehouse.audit.events import (
    AuditEvent,
    credential_issued_event,
    credentials_revoked_event,
    secret_deleted_event,
    secret_set_event,
)
from gatehouse.domain.credentials import IssuedCredential
from gatehouse.domain.secrets import StoredSecret
from gatehouse.errors import Conflict
from gatehouse.store.base import CredentialStore, SecretStore

__all__ = ["MemoryBrokerConcerns"]


class MemoryBrokerConcerns(SecretStore, CredentialStore):
    """Mixed into `MemoryStore`, which provides `_turn`, `_append` and the two tables."""

    _secrets: dict[tuple[str, str], StoredSecret]
    _credentials: dict[str, IssuedCredential]

    async def _turn(self) -> None:
        raise NotImplementedError

    def _append(self, events: Sequence[AuditEvent]) -> None:
        raise NotImplementedError

    # secrets --------------------------------------------------------------------------------
    async def put_secret(self, secret: StoredSecret) -> StoredSecret:
        await self._turn()
        key = (secret.tenant, secret.name)
        old = self._secrets.get(key)
        stored = (
            secret if old is None else replace(secret, created_at=old.created_at, created_by=old.created_by)
        )
        self._secrets[key] = stored
        self._append([secret_set_event(secret.tenant, secret.name, created=old is None)])
        return stored

    async def get_secret(self, tenant: str, name: str) -> StoredSecret | None:
        return self._secrets.get((tenant, name))

    async def list_secrets(self, tenant: str) -> list[StoredSecret]:
        return sorted((s for (t, _), s in self._secrets.items() if t == tenant), key=lambda s: s.name)

    async def delete_secret(self, tenant: str, name: str) -> bool:
        await self._turn()
        if self._secrets.pop((tenant, name), None) is None:
            return False
        self._append([secret_deleted_event(tenant, name)])
        return True

    # credentials ----------------------------------------------------------------------------
    async def add_credential(self, credential: IssuedCredential) -> None:
        await self._turn()
        if credential.jti in self._credentials:
            raise Conflict(f"credential `{credential.jti}` exists already", code="duplicate_credential")
        self._credentials[credential.jti] = credential
        self._append([credential_issued_event(credential)])

    async def get_credential(self, jti: str) -> IssuedCredential | None:
        return self._credentials.get(jti)

    async def revoke_credentials(
        self,
        *,
        at: float,
        tenant: str | None,
        jti: str | None = None,
        adapter: str | None = None,
        session_id: str | None = None,
    ) -> list[IssuedCredential]:
        await self._turn()
        found = [
            c
            for c in self._credentials.values()
            if c.live(at)
            and (tenant is None or c.tenant == tenant)
            and (jti is None or c.jti == jti)
            and (adapter is None or c.adapter == adapter)
            and (session_id is None or c.session_id == session_id)
        ]
        found.sort(key=lambda c: (c.issued_at, c.jti))
        revoked = [replace(c, revoked_at=at) for c in found]
        for c in revoked:
            self._credentials[c.jti] = c
        by = {
            k: v for k, v in (("jti", jti), ("adapter", adapter), ("session_id", session_id)) if v is not None
        }
        tenants = sorted({c.tenant for c in revoked})
        if tenants:
            self._append(
                [
                    credentials_revoked_event(t, [c.jti for c in revoked if c.tenant == t], by=by)
                    for t in tenants
                ]
            )
        return revoked

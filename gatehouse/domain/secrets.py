"""Secrets as the store keeps them: sealed (AES-GCM), per tenant, never in plain text.

The value is sealed and opened by `broker.secrets` with a key the store never sees; a stored
secret carries only the ciphertext, its nonce and who changed it when. `to_public` is what any
route may show: the name and the times, never a byte of the value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gatehouse.domain.ids import rfc3339

__all__ = ["StoredSecret"]


@dataclass(frozen=True, slots=True)
class StoredSecret:
    tenant: str
    name: str
    nonce: bytes
    ciphertext: bytes  # AES-GCM, its associated data binding tenant and name
    created_at: float
    updated_at: float
    created_by: str | None = None
    updated_by: str | None = None

    def to_public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tenant": self.tenant,
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(self.updated_at),
            "created_by": self.created_by,
            "updated_by": self.updated_by,
        }

    def __repr__(self) -> str:
        # Ciphertext is no secret without the key, but it has no business in a log line either.
        return f"StoredSecret(tenant={self.tenant!r}, name={self.name!r})"

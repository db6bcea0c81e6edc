"""Credentials the broker mints per execution, as the store remembers them (the token itself
is never stored: its `jti` names it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gatehouse.domain.ids import rfc3339

__all__ = ["IssuedCredential"]


@dataclass(frozen=True, slots=True)
class IssuedCredential:
    jti: str
    tenant: str
    adapter: str
    session_id: str
    identity_id: str  # the `sub` claim
    target: str  # the `act` claim: adapter:<adapter>:<action>
    audience: str
    issued_at: float
    expires_at: float
    revoked_at: float | None = None

    def live(self, at: float) -> bool:
        return self.revoked_at is None and at < self.expires_at

    def to_public(self) -> dict[str, Any]:
        return {
            "jti": self.jti,
            "tenant": self.tenant,
            "adapter": self.adapter,
            "session_id": self.session_id,
            "identity": self.identity_id,
            "target": self.target,
            "audience": self.audience,
            "issued_at": rfc3339(self.issued_at),
            "expires_at": rfc3339(self.expires_at),
            "revoked_at": rfc3339(self.revoked_at),
        }

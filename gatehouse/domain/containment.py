"""Incident containments (kill switches) as values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gatehouse.domain.ids import rfc3339

__all__ = ["Containment"]


@dataclass(frozen=True, slots=True)
class Containment:
    id: str
    kind: str  # tenant | identity
    target: str
    reason: str
    created_at: float
    created_by: str | None
    lifted_at: float | None = None
    lifted_by: str | None = None

    def to_public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "target": self.target,
            "reason": self.reason,
            "active": self.lifted_at is None,
            "created_at": rfc3339(self.created_at),
            "created_by": self.created_by,
            "lifted_at": rfc3339(self.lifted_at),
            "lifted_by": self.lifted_by,
        }

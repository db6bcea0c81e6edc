"""MCP tool definitions as Gatehouse pins them (rug-pull protection).

A tool's definition is what a model reads and trusts: its name, description, input schema and
annotations. Gatehouse pins it by the sha256 of its canonical JSON on first sight; a later
definition with another digest is withheld until an admin pins it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gatehouse.crypto import canonical
from gatehouse.domain.sessions import sha256_of

__all__ = ["FIRST_SIGHT", "ToolPin", "definition_of", "tool_digest"]

# `pinned_by` of a pin taken on first sight rather than by an admin.
FIRST_SIGHT = "first_sight"
_FIELDS = ("name", "description", "inputSchema", "annotations")


def definition_of(tool: dict[str, Any]) -> dict[str, Any]:
    """The pinned part of a wire tool (`title`, `_meta` and icons may change freely)."""
    return {k: tool.get(k) for k in _FIELDS}


def tool_digest(definition: dict[str, Any]) -> str:
    return sha256_of(definition_of(definition))


@dataclass(frozen=True, slots=True)
class ToolPin:
    adapter: str
    tool: str
    digest: str
    definition: dict[str, Any]
    pinned_at: float
    pinned_by: str  # FIRST_SIGHT, or the admin identity that pinned it

    def to_public(self) -> dict[str, Any]:
        return {
            "adapter": self.adapter,
            "tool": self.tool,
            "digest": self.digest,
            "definition": self.definition,
            "pinned_at": self.pinned_at,
            "pinned_by": self.pinned_by,
            "size": len(canonical(self.definition)),
        }

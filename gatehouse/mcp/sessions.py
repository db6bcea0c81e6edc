"""Which step-gate session an MCP request belongs to.

In order: the `Mcp-Session-Id` of a client on a stateful revision (`mcp:<id>`); else the
`X-Gatehouse-Session` header or the `_meta` key `gatehouse/session`; else one rolling session
per identity and adapter, replaced after 30 idle minutes (the conservative default: history
rules see more, never less). Pending approvals are remembered per session, so the identical
call made again reuses the step that waits for approval (and succeeds once approved), while a
changed call is a new step.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from gatehouse.domain.ids import new_id

__all__ = ["IDLE_SECONDS", "SessionMap"]

IDLE_SECONDS = 30 * 60
_MAX_PENDING = 10_000


class SessionMap:
    def __init__(self, *, idle_seconds: float = IDLE_SECONDS) -> None:
        self.idle_seconds = idle_seconds
        self._rolling: dict[tuple[str, str, str], tuple[str, float]] = {}
        self._pending: OrderedDict[tuple[str, str, str], str] = OrderedDict()

    def session_id(
        self, *, identity_id: str, tenant: str, adapter: str, headers: Mapping[str, str], meta: Any
    ) -> str:
        mcp_session = headers.get("mcp-session-id")
        if mcp_session:
            return f"mcp:{mcp_session}"
        explicit = headers.get("x-gatehouse-session")
        if not explicit and isinstance(meta, Mapping):
            value = meta.get("gatehouse/session")
            explicit = value if isinstance(value, str) else None
        if explicit:
            return explicit
        key = (tenant, identity_id, adapter)
        at = time.monotonic()
        known = self._rolling.get(key)
        if known is None or at - known[1] > self.idle_seconds:
            known = (new_id("ses"), at)
        self._rolling[key] = (known[0], at)
        return known[0]

    def pending_step(self, session_id: str, target: str, args_hash: str) -> str | None:
        return self._pending.get((session_id, target, args_hash))

    def remember_pending(self, session_id: str, target: str, args_hash: str, step_id: str) -> None:
        self._pending[(session_id, target, args_hash)] = step_id
        while len(self._pending) > _MAX_PENDING:
            self._pending.popitem(last=False)

    def settle(self, session_id: str, target: str, args_hash: str) -> None:
        self._pending.pop((session_id, target, args_hash), None)

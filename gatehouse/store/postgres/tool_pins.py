"""Pinned MCP tool definitions in the PostgreSQL driver (global per adapter, shared by replicas)."""

from __future__ import annotations

import asyncpg

from gatehouse.domain.tools import ToolPin
from gatehouse.store.base import ToolPinStore
from gatehouse.store.postgres.connection import PostgresBase
from gatehouse.store.sqlite import rows

__all__ = ["PostgresToolPins"]

_COLUMNS = "adapter, tool, digest, definition, pinned_at, pinned_by"


def _pin(row: asyncpg.Record) -> ToolPin:
    adapter, tool, digest, definition, pinned_at, pinned_by = row
    return ToolPin(adapter=adapter, tool=tool, digest=digest, definition=rows.loads(definition),
                   pinned_at=pinned_at, pinned_by=pinned_by)  # fmt: skip


class PostgresToolPins(PostgresBase, ToolPinStore):
    async def tool_pins(self, adapter: str) -> dict[str, ToolPin]:
        found = await self._fetch(f"SELECT {_COLUMNS} FROM tool_pins WHERE adapter = $1", adapter)
        return {p.tool: p for p in map(_pin, found)}

    async def pin_tool(self, pin: ToolPin, *, replace: bool) -> ToolPin:
        values = (pin.adapter, pin.tool, pin.digest, rows.dumps(pin.definition), pin.pinned_at, pin.pinned_by)
        if replace:
            # An admin's pin overwrites; the row comes back as stored.
            on_conflict = (
                "DO UPDATE SET digest = EXCLUDED.digest, definition = EXCLUDED.definition, "
                "pinned_at = EXCLUDED.pinned_at, pinned_by = EXCLUDED.pinned_by"
            )
        else:
            # First sight: a pin another replica stored first stays in force. (A no-op update,
            # so that RETURNING answers the row in force either way.)
            on_conflict = "DO UPDATE SET adapter = tool_pins.adapter"

        async def put(conn: asyncpg.Connection) -> ToolPin:
            row = await conn.fetchrow(
                f"INSERT INTO tool_pins ({_COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6) "
                f"ON CONFLICT (adapter, tool) {on_conflict} RETURNING {_COLUMNS}",
                *values,
            )
            return _pin(row)

        return await self._write(put)

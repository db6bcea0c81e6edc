"""Pinned MCP tool definitions in the SQLite driver."""

from __future__ import annotations

import sqlite3
from typing import Any

from gatehouse.domain.tools import ToolPin
from gatehouse.store.base import ToolPinStore
from gatehouse.store.sqlite import rows
from gatehouse.store.sqlite.connection import SQLiteBase

__all__ = ["SQLiteToolPins"]

_COLUMNS = "adapter, tool, digest, definition, pinned_at, pinned_by"


def _pin(row: tuple[Any, ...]) -> ToolPin:
    adapter, tool, digest, definition, pinned_at, pinned_by = row
    return ToolPin(adapter=adapter, tool=tool, digest=digest, definition=rows.loads(definition),
                   pinned_at=pinned_at, pinned_by=pinned_by)  # fmt: skip


class SQLiteToolPins(SQLiteBase, ToolPinStore):
    async def tool_pins(self, adapter: str) -> dict[str, ToolPin]:
        found = self.db.execute(f"SELECT {_COLUMNS} FROM tool_pins WHERE adapter = ?", (adapter,))
        return {p.tool: p for p in map(_pin, found.fetchall())}

    async def pin_tool(self, pin: ToolPin, *, replace: bool) -> ToolPin:
        def put(db: sqlite3.Connection) -> ToolPin:
            values = (pin.adapter, pin.tool, pin.digest, rows.dumps(pin.definition), pin.pinned_at,
                      pin.pinned_by)  # fmt: skip
            if replace:
                db.execute(f"INSERT OR REPLACE INTO tool_pins ({_COLUMNS}) VALUES (?,?,?,?,?,?)", values)
                return pin
            # First sight: a pin another replica stored first stays in force.
            db.execute(f"INSERT OR IGNORE INTO tool_pins ({_COLUMNS}) VALUES (?,?,?,?,?,?)", values)
            row = db.execute(
                f"SELECT {_COLUMNS} FROM tool_pins WHERE adapter = ? AND tool = ?", (pin.adapter, pin.tool)
            ).fetchone()
            return _pin(row)

        return await self._write(put)

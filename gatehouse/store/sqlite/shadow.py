"""The shadow bundle and its disagreements in the SQLite driver."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from gatehouse.domain.shadow import Disagreement
from gatehouse.store.base import PolicyRow, ShadowStore
from gatehouse.store.sqlite import rows
from gatehouse.store.sqlite.connection import SQLiteBase

__all__ = ["COLUMNS", "SQLiteShadow", "disagreement", "values"]

COLUMNS = (
    "decision_id, timestamp, stage, tenant, subject, live_snapshot, live_decision, live_rule_id, "
    "shadow_snapshot, shadow_decision, shadow_rule_id, shadow_reason"
)


def disagreement(row: Any) -> Disagreement:
    return Disagreement(*tuple(row))


def values(d: Disagreement) -> tuple[Any, ...]:
    return (d.decision_id, d.timestamp, d.stage, d.tenant, d.subject, d.live_snapshot,
            d.live_decision, d.live_rule_id, d.shadow_snapshot, d.shadow_decision, d.shadow_rule_id,
            d.shadow_reason)  # fmt: skip


class SQLiteShadow(SQLiteBase, ShadowStore):
    async def set_shadow_policy(self, row: PolicyRow | None) -> None:
        def put(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM shadow_policy")
            if row is not None:
                db.execute(
                    "INSERT INTO shadow_policy (id, snapshot, text, signature, serial, installed_at, "
                    "installed_by) VALUES (1,?,?,?,?,?,?)",
                    (row.snapshot, row.text, rows.dumps(row.signature) if row.signature is not None else None,
                     row.serial, row.installed_at, row.installed_by),
                )  # fmt: skip

        await self._write(put)

    async def shadow_policy(self) -> PolicyRow | None:
        found = self.db.execute(
            "SELECT snapshot, text, signature, serial, installed_at, installed_by FROM shadow_policy"
        ).fetchone()
        if found is None:
            return None
        snapshot, text, signature, serial, installed_at, installed_by = found
        return PolicyRow(snapshot=snapshot, text=text, signature=rows.loads(signature) if signature else None,
                         serial=serial, installed_at=installed_at, installed_by=installed_by)  # fmt: skip

    async def add_disagreements(self, found: Sequence[Disagreement]) -> None:
        rows = [values(d) for d in found]
        await self._write(
            lambda db: db.executemany(
                f"INSERT INTO shadow_disagreements ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows
            )
        )

    async def disagreements(
        self, *, shadow_snapshot: str | None = None, tenant: str | None = None, limit: int = 100
    ) -> list[Disagreement]:
        where, args = ["1=1"], []
        if shadow_snapshot is not None:
            where.append("shadow_snapshot = ?")
            args.append(shadow_snapshot)
        if tenant is not None:
            where.append("tenant = ?")
            args.append(tenant)
        found = self.db.execute(
            f"SELECT {COLUMNS} FROM shadow_disagreements WHERE {' AND '.join(where)} "
            "ORDER BY seq DESC LIMIT ?",
            (*args, limit),
        ).fetchall()
        return [disagreement(r) for r in found]

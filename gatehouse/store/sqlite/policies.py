"""Installed policy bundles in the SQLite driver: an append-only history, newest first."""

from __future__ import annotations

import sqlite3

from gatehouse.audit.events import policy_installed_event
from gatehouse.store.base import PolicyRow, PolicyStore
from gatehouse.store.sqlite import rows
from gatehouse.store.sqlite.connection import SQLiteBase

__all__ = ["SQLitePolicies"]


class SQLitePolicies(SQLiteBase, PolicyStore):
    async def save_policy(self, row: PolicyRow) -> None:
        await self._write(lambda db: self._save_policy(db, row))

    def _save_policy(self, db: sqlite3.Connection, row: PolicyRow) -> None:
        db.execute(
            "INSERT INTO policies (snapshot, text, signature, serial, installed_at, installed_by) "
            "VALUES (?,?,?,?,?,?)",
            (
                row.snapshot,
                row.text,
                rows.dumps(row.signature) if row.signature is not None else None,
                row.serial,
                row.installed_at,
                row.installed_by,
            ),
        )
        event = policy_installed_event(
            snapshot=row.snapshot,
            serial=row.serial,
            signature=row.signature,
            installed_by=row.installed_by,
            signature_verified=row.signature_verified,
        )
        self._append_audit(db, [event])

    async def policy_history(self, limit: int = 20) -> list[PolicyRow]:
        found = self.db.execute(
            "SELECT snapshot, text, signature, serial, installed_at, installed_by FROM policies "
            "ORDER BY seq DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [
            PolicyRow(
                snapshot=snapshot,
                text=text,
                signature=rows.loads(signature) if signature else None,
                serial=serial,
                installed_at=installed_at,
                installed_by=installed_by,
            )
            for snapshot, text, signature, serial, installed_at, installed_by in found
        ]

"""Installed policy bundles in the PostgreSQL driver: an append-only history, newest first."""

from __future__ import annotations

import asyncpg

from gatehouse.audit.events import policy_installed_event
from gatehouse.store.base import PolicyRow, PolicyStore
from gatehouse.store.postgres.connection import PostgresBase
from gatehouse.store.sqlite import rows

__all__ = ["PostgresPolicies"]


class PostgresPolicies(PostgresBase, PolicyStore):
    async def save_policy(self, row: PolicyRow) -> None:
        async def save(conn: asyncpg.Connection) -> None:
            await conn.execute(
                "INSERT INTO policies (snapshot, text, signature, serial, installed_at, installed_by) "
                "VALUES ($1,$2,$3,$4,$5,$6)",
                row.snapshot,
                row.text,
                rows.dumps(row.signature) if row.signature is not None else None,
                row.serial,
                row.installed_at,
                row.installed_by,
            )
            event = policy_installed_event(
                snapshot=row.snapshot,
                serial=row.serial,
                signature=row.signature,
                installed_by=row.installed_by,
                signature_verified=row.signature_verified,
            )
            await self._append_audit(conn, [event])

        await self._write(save)

    async def policy_history(self, limit: int = 20) -> list[PolicyRow]:
        found = await self._fetch(
            "SELECT snapshot, text, signature, serial, installed_at, installed_by FROM policies "
            "ORDER BY seq DESC LIMIT $1",
            limit,
        )
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

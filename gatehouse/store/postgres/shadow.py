"""The shadow bundle and its disagreements in the PostgreSQL driver (shared by replicas)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from gatehouse.domain.shadow import Disagreement
from gatehouse.store.base import PolicyRow, ShadowStore
from gatehouse.store.postgres.connection import PostgresBase
from gatehouse.store.sqlite import rows
from gatehouse.store.sqlite.shadow import COLUMNS, disagreement, values

__all__ = ["PostgresShadow"]


class PostgresShadow(PostgresBase, ShadowStore):
    async def set_shadow_policy(self, row: PolicyRow | None) -> None:
        async def put(conn: asyncpg.Connection) -> None:
            await conn.execute("DELETE FROM shadow_policy")
            if row is not None:
                await conn.execute(
                    "INSERT INTO shadow_policy (id, snapshot, text, signature, serial, installed_at, "
                    "installed_by) VALUES (1,$1,$2,$3,$4,$5,$6)",
                    row.snapshot,
                    row.text,
                    rows.dumps(row.signature) if row.signature is not None else None,
                    row.serial,
                    row.installed_at,
                    row.installed_by,
                )

        await self._write(put)

    async def shadow_policy(self) -> PolicyRow | None:
        found = await self._fetch(
            "SELECT snapshot, text, signature, serial, installed_at, installed_by FROM shadow_policy"
        )
        if not found:
            return None
        snapshot, text, signature, serial, installed_at, installed_by = found[0]
        return PolicyRow(snapshot=snapshot, text=text, signature=rows.loads(signature) if signature else None,
                         serial=serial, installed_at=installed_at, installed_by=installed_by)  # fmt: skip

    async def add_disagreements(self, found: Sequence[Disagreement]) -> None:
        rows = [tuple(values(d)) for d in found]

        async def add(conn: asyncpg.Connection) -> None:
            await conn.executemany(
                f"INSERT INTO shadow_disagreements ({COLUMNS}) "
                "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)",
                rows,
            )

        await self._write(add)

    async def disagreements(
        self, *, shadow_snapshot: str | None = None, tenant: str | None = None, limit: int = 100
    ) -> list[Disagreement]:
        found = await self._fetch(
            f"SELECT {COLUMNS} FROM shadow_disagreements "
            "WHERE ($1::text IS NULL OR shadow_snapshot = $1) AND ($2::text IS NULL OR tenant = $2) "
            "ORDER BY seq DESC LIMIT $3",
            shadow_snapshot,
            tenant,
            limit,
        )
        return [disagreement(r) for r in found]

"""The PostgreSQL driver: the store of a scale-out deployment (many replicas, one database).

Modules: `schema` (versioned migrations), `rows` (writing rows; the SQLite driver's readers read
them), `_sink` (the audit heads locked per transaction), `connection` (the pool, transactions,
retries), one module per concern, and `store` (`PostgresStore`, all of them). Only this package
imports asyncpg (the `postgres` extra).
"""

from __future__ import annotations

from gatehouse.store.postgres.store import PostgresStore

__all__ = ["PostgresStore"]

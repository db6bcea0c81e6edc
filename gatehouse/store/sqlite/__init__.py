"""The SQLite driver: the embedded default store (one file, WAL, group commit).

Modules: `schema` (tables and migrations), `rows` (row mapping), `connection` (the connection,
group commit, audit sink), one module per concern, and `store` (`SQLiteStore`, all of them).
"""

from __future__ import annotations

from gatehouse.store.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore"]

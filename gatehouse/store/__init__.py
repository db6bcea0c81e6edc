"""Storage behind one interface: SQLite (embedded default); PostgreSQL for scale-out."""

from __future__ import annotations

from gatehouse.store.base import JobPage, PolicyRow, Store
from gatehouse.store.sqlite import SQLiteStore

__all__ = ["JobPage", "PolicyRow", "SQLiteStore", "Store"]

"""Storage behind per-concern interfaces (`base`): an in-memory twin (`memory`), SQLite (the
embedded default, `sqlite/`); PostgreSQL for scale-out joins them with the same contract suite."""

from __future__ import annotations

from gatehouse.store.base import ApprovalPage, DecisionPage, JobPage, PolicyRow, Store
from gatehouse.store.sqlite import SQLiteStore

__all__ = ["ApprovalPage", "DecisionPage", "JobPage", "PolicyRow", "SQLiteStore", "Store"]

"""`SQLiteStore`: the embedded default driver, one class made of its concerns.

Each concern lives in its own module (`identities`, `jobs` with `approvals`, `decisions`,
`audit`, `policies`) on top of the shared connection (`connection.SQLiteBase`); this class only
puts them together under the `Store` interface.
"""

from __future__ import annotations

from gatehouse.store.base import Store
from gatehouse.store.sqlite.approvals import SQLiteApprovals
from gatehouse.store.sqlite.audit import SQLiteAudit
from gatehouse.store.sqlite.broker import SQLiteCredentials, SQLiteSecrets
from gatehouse.store.sqlite.decisions import SQLiteDecisions
from gatehouse.store.sqlite.identities import SQLiteContainments, SQLiteIdentities
from gatehouse.store.sqlite.jobs import SQLiteJobs
from gatehouse.store.sqlite.policies import SQLitePolicies
from gatehouse.store.sqlite.sessions import SQLiteSessions
from gatehouse.store.sqlite.shadow import SQLiteShadow
from gatehouse.store.sqlite.tool_pins import SQLiteToolPins

__all__ = ["SQLiteStore"]


class SQLiteStore(
    SQLiteIdentities,
    SQLiteContainments,
    SQLiteJobs,
    SQLiteDecisions,
    SQLiteApprovals,
    SQLiteAudit,
    SQLitePolicies,
    SQLiteShadow,
    SQLiteSessions,
    SQLiteToolPins,
    SQLiteSecrets,
    SQLiteCredentials,
    Store,
):
    """SQLite behind the whole `Store` interface (`SQLiteStore(path=..., audit_key=...)`)."""

"""`PostgresStore`: the scale-out driver, one class made of its concerns.

Each concern lives in its own module on top of the shared pool (`connection.PostgresBase`);
this class only puts them together under the `Store` interface.
"""

from __future__ import annotations

from gatehouse.store.base import Store
from gatehouse.store.postgres.approvals import PostgresApprovals
from gatehouse.store.postgres.audit import PostgresAudit
from gatehouse.store.postgres.broker import PostgresCredentials, PostgresSecrets
from gatehouse.store.postgres.decisions import PostgresDecisions
from gatehouse.store.postgres.identities import PostgresContainments, PostgresIdentities
from gatehouse.store.postgres.jobs import PostgresJobs
from gatehouse.store.postgres.policies import PostgresPolicies
from gatehouse.store.postgres.sessions import PostgresSessions
from gatehouse.store.postgres.shadow import PostgresShadow
from gatehouse.store.postgres.tool_pins import PostgresToolPins

__all__ = ["PostgresStore"]


class PostgresStore(
    PostgresIdentities,
    PostgresContainments,
    PostgresJobs,
    PostgresDecisions,
    PostgresApprovals,
    PostgresAudit,
    PostgresPolicies,
    PostgresShadow,
    PostgresSessions,
    PostgresToolPins,
    PostgresSecrets,
    PostgresCredentials,
    Store,
):
    """PostgreSQL behind the whole `Store` interface (`PostgresStore(url=..., audit_key=...)`)."""

"""The SQLite schema and its migrations.

`SCHEMA` creates what a new data directory needs (idempotent: `IF NOT EXISTS`). A data directory
made by an older version is brought forward by `migrate`: each step runs once, in order, and
`PRAGMA user_version` remembers how far a database got.
"""

from __future__ import annotations

import sqlite3
from typing import Any

__all__ = ["SCHEMA", "SCHEMA_VERSION", "Tx", "migrate"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS identities (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    tenant TEXT NOT NULL,
    roles TEXT NOT NULL,
    topics TEXT NOT NULL,
    capabilities TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    created_by TEXT,
    revoked_at REAL,
    rate_limit TEXT,
    adapters TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    tenant TEXT NOT NULL,
    identity_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    prompt TEXT NOT NULL,
    labels TEXT NOT NULL,
    meta TEXT NOT NULL,
    attachments TEXT NOT NULL,
    status TEXT NOT NULL,
    job_hash TEXT NOT NULL,
    idempotency_key TEXT,
    policy_snapshot TEXT,
    requester_roles TEXT NOT NULL,
    derived TEXT NOT NULL,
    result TEXT,
    error TEXT,
    lease_owner TEXT,
    lease_expires_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    remediated_from TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_idem ON jobs (identity_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, topic, seq);
CREATE INDEX IF NOT EXISTS jobs_tenant ON jobs (tenant, seq);
CREATE INDEX IF NOT EXISTS jobs_lease ON jobs (lease_expires_at) WHERE lease_expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS decisions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    decision_id TEXT NOT NULL UNIQUE,
    job_id TEXT,
    tenant TEXT,
    timestamp REAL NOT NULL,
    result TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    stage TEXT NOT NULL,
    policy_snapshot TEXT,
    job_hash TEXT,
    remediations TEXT NOT NULL,
    cached INTEGER NOT NULL,
    fail_mode_applied INTEGER NOT NULL,
    extra TEXT NOT NULL,
    request TEXT
);
CREATE INDEX IF NOT EXISTS decisions_job ON decisions (job_id, seq);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    stream TEXT NOT NULL,
    seq INTEGER NOT NULL,
    ts REAL NOT NULL,
    type TEXT NOT NULL,
    actor TEXT,
    request_id TEXT,
    data TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    UNIQUE (stream, seq)
);
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    stream TEXT NOT NULL,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    time REAL NOT NULL,
    key_id TEXT NOT NULL,
    sig TEXT NOT NULL,
    prev TEXT
);
CREATE INDEX IF NOT EXISTS audit_checkpoints_stream ON audit_checkpoints (stream, id);
CREATE TABLE IF NOT EXISTS audit_roots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    seq INTEGER NOT NULL UNIQUE,
    time REAL NOT NULL,
    prev TEXT NOT NULL,
    heads TEXT NOT NULL,
    key_id TEXT NOT NULL,
    sig TEXT NOT NULL,
    final INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS approvals (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    job_id TEXT,
    tenant TEXT NOT NULL,
    job_hash TEXT,
    policy_snapshot TEXT,
    rule_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    status TEXT NOT NULL,
    requested_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    ttl INTEGER NOT NULL,
    requested_by TEXT NOT NULL,
    approver_id TEXT,
    decided_at REAL,
    comment TEXT,
    token TEXT,
    nonce TEXT UNIQUE,
    consumed_at REAL,
    kind TEXT NOT NULL DEFAULT 'job',
    session_id TEXT,
    step_id TEXT,
    target TEXT,
    step_hash TEXT
);
CREATE INDEX IF NOT EXISTS approvals_job ON approvals (job_id, seq);
CREATE INDEX IF NOT EXISTS approvals_status ON approvals (tenant, status, seq);
CREATE TABLE IF NOT EXISTS containments (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at REAL NOT NULL,
    created_by TEXT,
    lifted_at REAL,
    lifted_by TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS containments_active ON containments (kind, target)
    WHERE lifted_at IS NULL;
CREATE TABLE IF NOT EXISTS tool_pins (
    adapter TEXT NOT NULL,
    tool TEXT NOT NULL,
    digest TEXT NOT NULL,
    definition TEXT NOT NULL,
    pinned_at REAL NOT NULL,
    pinned_by TEXT NOT NULL,
    PRIMARY KEY (adapter, tool)
);
CREATE TABLE IF NOT EXISTS secrets (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    nonce BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    created_by TEXT,
    updated_by TEXT,
    PRIMARY KEY (tenant, name)
);
CREATE TABLE IF NOT EXISTS credentials (
    jti TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    adapter TEXT NOT NULL,
    session_id TEXT NOT NULL,
    identity_id TEXT NOT NULL,
    target TEXT NOT NULL,
    audience TEXT NOT NULL,
    issued_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    revoked_at REAL
);
CREATE INDEX IF NOT EXISTS credentials_live_adapter ON credentials (adapter, expires_at)
    WHERE revoked_at IS NULL;
CREATE INDEX IF NOT EXISTS credentials_live_session ON credentials (session_id, expires_at)
    WHERE revoked_at IS NULL;
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    identity_id TEXT NOT NULL,
    task TEXT NOT NULL,
    created_at REAL NOT NULL,
    job_id TEXT,
    untrusted_size INTEGER NOT NULL DEFAULT 0,
    bounded INTEGER NOT NULL DEFAULT 0,
    revision INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS session_steps (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    adapter TEXT NOT NULL,
    action TEXT NOT NULL,
    params TEXT NOT NULL,
    step_hash TEXT NOT NULL,
    decision_id TEXT NOT NULL,
    result TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    status TEXT,
    output TEXT,
    trusted INTEGER NOT NULL DEFAULT 0,
    approval_id TEXT,
    rev INTEGER NOT NULL DEFAULT 0,
    claimed_at REAL,
    UNIQUE (session_id, step_id)
);
CREATE TABLE IF NOT EXISTS shadow_policy (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    snapshot TEXT NOT NULL,
    text TEXT NOT NULL,
    signature TEXT,
    serial INTEGER,
    installed_at REAL NOT NULL,
    installed_by TEXT
);
CREATE TABLE IF NOT EXISTS shadow_disagreements (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    decision_id TEXT NOT NULL,
    timestamp REAL NOT NULL,
    stage TEXT NOT NULL,
    tenant TEXT,
    subject TEXT,
    live_snapshot TEXT,
    live_decision TEXT NOT NULL,
    live_rule_id TEXT NOT NULL,
    shadow_snapshot TEXT NOT NULL,
    shadow_decision TEXT NOT NULL,
    shadow_rule_id TEXT NOT NULL,
    shadow_reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS shadow_disagreements_snapshot ON shadow_disagreements (shadow_snapshot, seq);
CREATE TABLE IF NOT EXISTS policies (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    snapshot TEXT NOT NULL,
    text TEXT NOT NULL,
    signature TEXT,
    serial INTEGER,
    installed_at REAL NOT NULL,
    installed_by TEXT
);
"""

SCHEMA_VERSION = 7


def migrate(db: sqlite3.Connection) -> None:
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version >= SCHEMA_VERSION:
        return
    if version < 1:
        _to_1(db)
    if version < 2:
        _to_2(db)
    if version < 3:
        _to_3(db)
    if version < 4:
        _to_4(db)
    if version < 5:
        _to_5(db)
    if version < 6:
        _to_6(db)
    if version < 7:
        _to_7(db)


def _to_7(db: sqlite3.Connection) -> None:
    """Steps say when Gatehouse claimed them for execution (`claimed_at`): one call per step."""
    with Tx(db):
        columns = {row[1] for row in db.execute("PRAGMA table_info(session_steps)")}
        if "claimed_at" not in columns:
            db.execute("ALTER TABLE session_steps ADD COLUMN claimed_at REAL")
        db.execute("PRAGMA user_version = 7")


def _to_6(db: sqlite3.Connection) -> None:
    """Sessions count their changes (`revision`) and steps say when they last changed (`rev`), so
    the step gate reads only what changed since the view it holds."""
    with Tx(db):
        for table, column in (("sessions", "revision"), ("session_steps", "rev")):
            columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
            if column not in columns:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0")
        db.execute("CREATE INDEX IF NOT EXISTS session_steps_rev ON session_steps (session_id, rev)")
        db.execute("PRAGMA user_version = 6")


_APPROVAL_V4_COLUMNS = (
    "seq, id, job_id, tenant, job_hash, policy_snapshot, rule_id, reason, status, requested_at, "
    "expires_at, ttl, requested_by, approver_id, decided_at, comment, token, nonce, consumed_at"
)


def _to_5(db: sqlite3.Connection) -> None:
    """Step approvals share the approvals table: a `kind`, the step they name, and no job (SQLite
    cannot drop a NOT NULL in place, so a table made before is copied into the new shape)."""
    with Tx(db):
        columns = {row[1] for row in db.execute("PRAGMA table_info(approvals)")}
        if "kind" not in columns:
            shape = SCHEMA[SCHEMA.index("CREATE TABLE IF NOT EXISTS approvals (") :]
            shape = shape[: shape.index(");") + 2].replace("IF NOT EXISTS approvals", "approvals_v5")
            db.execute(shape)
            cols = _APPROVAL_V4_COLUMNS
            db.execute(f"INSERT INTO approvals_v5 ({cols}) SELECT {cols} FROM approvals")
            db.execute("DROP TABLE approvals")
            db.execute("ALTER TABLE approvals_v5 RENAME TO approvals")
            db.execute("CREATE INDEX IF NOT EXISTS approvals_job ON approvals (job_id, seq)")
            db.execute("CREATE INDEX IF NOT EXISTS approvals_status ON approvals (tenant, status, seq)")
        db.execute("PRAGMA user_version = 5")


def _to_4(db: sqlite3.Connection) -> None:
    """Identities carry an adapter scope (the session tables come from SCHEMA)."""
    with Tx(db):
        columns = {row[1] for row in db.execute("PRAGMA table_info(identities)")}
        if "adapters" not in columns:
            db.execute("ALTER TABLE identities ADD COLUMN adapters TEXT NOT NULL DEFAULT '[]'")
        db.execute("PRAGMA user_version = 4")


def _to_3(db: sqlite3.Connection) -> None:
    """Roots say whether a clean shutdown signed them."""
    with Tx(db):
        columns = {row[1] for row in db.execute("PRAGMA table_info(audit_roots)")}
        if "final" not in columns:
            db.execute("ALTER TABLE audit_roots ADD COLUMN final INTEGER NOT NULL DEFAULT 0")
        db.execute("PRAGMA user_version = 3")


def _to_2(db: sqlite3.Connection) -> None:
    """Chained checkpoints (`prev`; the audit_roots table and its index come from SCHEMA)."""
    with Tx(db):
        columns = {row[1] for row in db.execute("PRAGMA table_info(audit_checkpoints)")}
        if "prev" not in columns:
            db.execute("ALTER TABLE audit_checkpoints ADD COLUMN prev TEXT")
        db.execute("CREATE INDEX IF NOT EXISTS audit_checkpoints_stream ON audit_checkpoints (stream, id)")
        db.execute("PRAGMA user_version = 2")


def _to_1(db: sqlite3.Connection) -> None:
    with Tx(db):
        columns = {row[1] for row in db.execute("PRAGMA table_info(decisions)")}
        if "tenant" not in columns:
            db.execute("ALTER TABLE decisions ADD COLUMN tenant TEXT")
        if "request" not in columns:
            db.execute("ALTER TABLE decisions ADD COLUMN request TEXT")
        # The decision log is read per tenant: records written before it was (or by a path
        # that left the tenant out) take their job's tenant.
        db.execute(
            "UPDATE decisions SET tenant = (SELECT tenant FROM jobs WHERE jobs.id = decisions.job_id) "
            "WHERE tenant IS NULL AND job_id IS NOT NULL"
        )
        db.execute("CREATE INDEX IF NOT EXISTS decisions_tenant ON decisions (tenant, seq)")
        db.execute("PRAGMA user_version = 1")


class Tx:
    """`BEGIN IMMEDIATE` ... `COMMIT`, rolled back on any exception."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.db.execute("COMMIT")
        else:
            self.db.execute("ROLLBACK")

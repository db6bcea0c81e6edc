"""The PostgreSQL schema as forward-only, versioned migrations, applied at start under a lock.

Every replica runs `migrate` when it opens the store. A session-level advisory lock lets one of
them apply what is missing while the others wait, then find nothing left to do. Each step runs in
its own transaction with the row that records it in `schema_migrations`, so a crash half-way
leaves the database at the last whole version. A database migrated by a newer release (a version
this code does not know) is refused: old code must not write rows whose meaning it does not know.

Columns mirror the SQLite driver's (JSON as text, so the audit keeps the exact JSON it hashed,
times as double precision seconds), so both drivers share their row readers.
"""

from __future__ import annotations

import asyncpg

from gatehouse.errors import GatehouseError

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "SchemaTooNew", "migrate"]

# pg_advisory_lock key of the migrations ("gatehous" in ASCII, so it names itself in pg_locks).
MIGRATION_LOCK = 0x67617465686F7573

_V1 = """
CREATE TABLE identities (
    id TEXT PRIMARY KEY,
    seq BIGSERIAL NOT NULL,
    name TEXT NOT NULL,
    tenant TEXT NOT NULL,
    roles TEXT NOT NULL,
    topics TEXT NOT NULL,
    capabilities TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    created_at DOUBLE PRECISION NOT NULL,
    created_by TEXT,
    revoked_at DOUBLE PRECISION,
    rate_limit TEXT,
    adapters TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE jobs (
    seq BIGSERIAL PRIMARY KEY,
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
    lease_expires_at DOUBLE PRECISION,
    attempts INTEGER NOT NULL DEFAULT 0,
    remediated_from TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE UNIQUE INDEX jobs_idem ON jobs (identity_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_status ON jobs (status, seq);
CREATE INDEX jobs_tenant ON jobs (tenant, seq);
CREATE INDEX jobs_lease ON jobs (lease_expires_at) WHERE lease_expires_at IS NOT NULL;
CREATE TABLE decisions (
    seq BIGSERIAL PRIMARY KEY,
    decision_id TEXT NOT NULL UNIQUE,
    job_id TEXT,
    tenant TEXT,
    timestamp DOUBLE PRECISION NOT NULL,
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
CREATE INDEX decisions_job ON decisions (job_id, seq);
CREATE INDEX decisions_tenant ON decisions (tenant, seq);
CREATE TABLE audit (
    id BIGSERIAL PRIMARY KEY,
    stream TEXT NOT NULL,
    seq BIGINT NOT NULL,
    ts DOUBLE PRECISION NOT NULL,
    type TEXT NOT NULL,
    actor TEXT,
    request_id TEXT,
    data TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    UNIQUE (stream, seq)
);
-- One row per stream: its head, locked (FOR UPDATE) by the transaction that appends to it, so
-- replicas append to a stream one after the other and the chain never forks.
CREATE TABLE audit_heads (
    stream TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE audit_checkpoints (
    id BIGSERIAL PRIMARY KEY,
    stream TEXT NOT NULL,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    time DOUBLE PRECISION NOT NULL,
    key_id TEXT NOT NULL,
    sig TEXT NOT NULL,
    prev TEXT
);
CREATE INDEX audit_checkpoints_stream ON audit_checkpoints (stream, id);
CREATE TABLE audit_roots (
    id BIGSERIAL PRIMARY KEY,
    seq BIGINT NOT NULL UNIQUE,
    time DOUBLE PRECISION NOT NULL,
    prev TEXT NOT NULL,
    heads TEXT NOT NULL,
    key_id TEXT NOT NULL,
    sig TEXT NOT NULL,
    final INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE approvals (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    job_id TEXT,
    tenant TEXT NOT NULL,
    job_hash TEXT,
    policy_snapshot TEXT,
    rule_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    status TEXT NOT NULL,
    requested_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    ttl INTEGER NOT NULL,
    requested_by TEXT NOT NULL,
    approver_id TEXT,
    decided_at DOUBLE PRECISION,
    comment TEXT,
    token TEXT,
    nonce TEXT UNIQUE,
    consumed_at DOUBLE PRECISION,
    kind TEXT NOT NULL DEFAULT 'job',
    session_id TEXT,
    step_id TEXT,
    target TEXT,
    step_hash TEXT
);
CREATE INDEX approvals_job ON approvals (job_id, seq);
CREATE INDEX approvals_status ON approvals (tenant, status, seq);
CREATE INDEX approvals_expiry ON approvals (status, expires_at);
CREATE TABLE containments (
    id TEXT PRIMARY KEY,
    seq BIGSERIAL NOT NULL,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    created_by TEXT,
    lifted_at DOUBLE PRECISION,
    lifted_by TEXT
);
CREATE UNIQUE INDEX containments_active ON containments (kind, target) WHERE lifted_at IS NULL;
CREATE TABLE tool_pins (
    adapter TEXT NOT NULL,
    tool TEXT NOT NULL,
    digest TEXT NOT NULL,
    definition TEXT NOT NULL,
    pinned_at DOUBLE PRECISION NOT NULL,
    pinned_by TEXT NOT NULL,
    PRIMARY KEY (adapter, tool)
);
CREATE TABLE secrets (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    nonce BYTEA NOT NULL,
    ciphertext BYTEA NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    created_by TEXT,
    updated_by TEXT,
    PRIMARY KEY (tenant, name)
);
CREATE TABLE credentials (
    jti TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    adapter TEXT NOT NULL,
    session_id TEXT NOT NULL,
    identity_id TEXT NOT NULL,
    target TEXT NOT NULL,
    audience TEXT NOT NULL,
    issued_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    revoked_at DOUBLE PRECISION
);
CREATE INDEX credentials_live_adapter ON credentials (adapter, expires_at) WHERE revoked_at IS NULL;
CREATE INDEX credentials_live_session ON credentials (session_id, expires_at) WHERE revoked_at IS NULL;
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    identity_id TEXT NOT NULL,
    task TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    job_id TEXT,
    untrusted_size BIGINT NOT NULL DEFAULT 0,
    bounded INTEGER NOT NULL DEFAULT 0,
    revision BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE session_steps (
    seq BIGSERIAL PRIMARY KEY,
    session_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    adapter TEXT NOT NULL,
    action TEXT NOT NULL,
    params TEXT NOT NULL,
    step_hash TEXT NOT NULL,
    decision_id TEXT NOT NULL,
    result TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    status TEXT,
    output TEXT,
    trusted INTEGER NOT NULL DEFAULT 0,
    approval_id TEXT,
    rev BIGINT NOT NULL DEFAULT 0,
    UNIQUE (session_id, step_id)
);
CREATE INDEX session_steps_rev ON session_steps (session_id, rev);
CREATE TABLE policies (
    seq BIGSERIAL PRIMARY KEY,
    snapshot TEXT NOT NULL,
    text TEXT NOT NULL,
    signature TEXT,
    serial BIGINT,
    installed_at DOUBLE PRECISION NOT NULL,
    installed_by TEXT
);
"""

# Shadow bundles (issue 22): the candidate judged beside the live bundle, and its disagreements.
_V2 = """
CREATE TABLE shadow_policy (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    snapshot TEXT NOT NULL,
    text TEXT NOT NULL,
    signature TEXT,
    serial BIGINT,
    installed_at DOUBLE PRECISION NOT NULL,
    installed_by TEXT
);
CREATE TABLE shadow_disagreements (
    seq BIGSERIAL PRIMARY KEY,
    decision_id TEXT NOT NULL,
    timestamp DOUBLE PRECISION NOT NULL,
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
CREATE INDEX shadow_disagreements_snapshot ON shadow_disagreements (shadow_snapshot, seq);
"""

_V3 = """
ALTER TABLE session_steps ADD COLUMN claimed_at DOUBLE PRECISION;
"""

# A worker's lease reads the queued jobs of its topics: by (status, topic) range as SQLite does,
# in byte order so that a prefix is one range whatever the database's collation. The index on
# (status, seq) alone read every queued job of every topic, on every wake-up, to find none.
_V4 = """
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs (status, topic COLLATE "C", seq);
"""

# (version, what it does, SQL): append only; a released step is never edited.
MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (1, "the whole schema", _V1),
    (2, "shadow bundles and their disagreements", _V2),
    (3, "steps claimed for execution", _V3),
    (4, "queued jobs by topic", _V4),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]


class SchemaTooNew(GatehouseError):
    """The database was migrated by a newer release than this one."""

    code = "schema_too_new"


async def migrate(conn: asyncpg.Connection) -> int:
    """Bring the database to `SCHEMA_VERSION`; answers the version it found."""
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "version INTEGER PRIMARY KEY, description TEXT NOT NULL, "
            "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        found = await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
        if found > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"the database schema is at version {found}, newer than this gatehouse knows "
                f"({SCHEMA_VERSION}): upgrade gatehouse before starting it on this database",
                details={"found": found, "known": SCHEMA_VERSION},
            )
        for version, description, sql in MIGRATIONS:
            if version <= found:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, description) VALUES ($1, $2)",
                    version,
                    description,
                )
        return int(found)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)

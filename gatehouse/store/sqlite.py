"""SQLite store: the embedded default. One connection, WAL, one savepoint per change.

`synchronous=NORMAL` in WAL mode keeps every committed transaction across a process crash
(`kill -9`); only an OS crash or power loss can drop the last commits. Calls run inline on the
event loop: each is a few hundred microseconds, cheaper than a thread hop. Writes are grouped
(`_commit.GroupCommit`): those queued in the same turn of the loop share one commit, each in its
own savepoint, and none is acknowledged before that commit.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import orjson

from gatehouse.audit.chain import GENESIS, Checkpoint, Entry, entry_hash, sign_checkpoint
from gatehouse.audit.events import (
    SYSTEM,
    AuditEvent,
    current_actor,
    current_request_id,
    decision_event,
    job_submitted_event,
    state_event,
)
from gatehouse.crypto import SigningKey
from gatehouse.domain.approvals import Approval
from gatehouse.domain.containment import Containment
from gatehouse.domain.identity import Identity
from gatehouse.domain.jobs import Job
from gatehouse.domain.records import DecisionRecord
from gatehouse.domain.states import next_state, sources
from gatehouse.errors import Conflict
from gatehouse.store._commit import GroupCommit
from gatehouse.store.base import DecisionPage, JobPage, PolicyRow, Store

__all__ = ["SQLiteStore"]

log = logging.getLogger("gatehouse.store")

T = TypeVar("T")

_KEY_CACHE_SIZE = 10_000
_CHECKPOINT_EVERY = 1_000  # writes
_KEY_CACHE_TTL = 2.0  # seconds

_SCHEMA = """
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
    rate_limit TEXT
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
    sig TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS approvals (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    job_id TEXT NOT NULL,
    tenant TEXT NOT NULL,
    job_hash TEXT NOT NULL,
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
    consumed_at REAL
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

# Schema changes for data directories made by an older version: each step runs once, in order,
# and `PRAGMA user_version` remembers how far a database got.
_SCHEMA_VERSION = 1


def _migrate(db: sqlite3.Connection) -> None:
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version >= _SCHEMA_VERSION:
        return
    with _Tx(db):
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
        db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")


_JOB_COLUMNS = (
    "seq, id, tenant, identity_id, topic, prompt, labels, meta, attachments, status, job_hash, "
    "idempotency_key, policy_snapshot, requester_roles, derived, result, error, lease_owner, "
    "lease_expires_at, attempts, remediated_from, created_at, updated_at"
)
_JSON_FIELDS = frozenset({"labels", "meta", "attachments", "derived", "result", "requester_roles"})
_UPDATABLE = frozenset(
    {
        "result",
        "error",
        "lease_owner",
        "lease_expires_at",
        "attempts",
        "policy_snapshot",
        "derived",
        "labels",
    }
)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _loads(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        # Rows written before orjson (json.dumps allowed NaN and Infinity): still readable.
        return json.loads(text)


def _job(row: sqlite3.Row | tuple[Any, ...]) -> Job:
    (
        seq,
        id_,
        tenant,
        identity_id,
        topic,
        prompt,
        labels,
        meta,
        attachments,
        status,
        jhash,
        idem,
        snapshot,
        roles,
        derived,
        result,
        error,
        lease_owner,
        lease_expires_at,
        attempts,
        remediated_from,
        created_at,
        updated_at,
    ) = row
    return Job(
        id=id_,
        tenant=tenant,
        identity_id=identity_id,
        topic=topic,
        prompt=prompt,
        labels=_loads(labels),
        meta=_loads(meta),
        attachments=_loads(attachments),
        status=status,
        job_hash=jhash,
        idempotency_key=idem,
        policy_snapshot=snapshot,
        requester_roles=tuple(_loads(roles)),
        derived=_loads(derived),
        result=_loads(result) if result is not None else None,
        error=error,
        lease_owner=lease_owner,
        lease_expires_at=lease_expires_at,
        attempts=attempts,
        remediated_from=remediated_from,
        created_at=created_at,
        updated_at=updated_at,
        seq=seq,
    )


def _identity(row: tuple[Any, ...]) -> Identity:
    id_, name, tenant, roles, topics, caps, created_at, created_by, revoked_at, rate_limit = row
    return Identity(
        id=id_,
        name=name,
        tenant=tenant,
        roles=tuple(_loads(roles)),
        topics=tuple(_loads(topics)),
        capabilities=tuple(_loads(caps)),
        created_at=created_at,
        created_by=created_by,
        revoked_at=revoked_at,
        rate_limit=rate_limit,
    )


_IDENTITY_COLUMNS = (
    "id, name, tenant, roles, topics, capabilities, created_at, created_by, revoked_at, rate_limit"
)


def _record(row: tuple[Any, ...]) -> DecisionRecord:
    (
        decision_id,
        job_id,
        tenant,
        ts,
        result,
        rule_id,
        reason,
        stage,
        snapshot,
        jhash,
        remediations,
        cached,
        fail_mode_applied,
        extra,
        request,
    ) = row
    return DecisionRecord(
        decision_id=decision_id,
        job_id=job_id,
        tenant=tenant,
        timestamp=ts,
        result=result,
        rule_id=rule_id,
        reason=reason,
        stage=stage,
        policy_snapshot=snapshot,
        job_hash=jhash,
        remediations=_loads(remediations),
        cached=bool(cached),
        fail_mode_applied=bool(fail_mode_applied),
        extra=_loads(extra),
        request=_loads(request) if request is not None else None,
    )


_RECORD_COLUMNS = (
    "decision_id, job_id, tenant, timestamp, result, rule_id, reason, stage, policy_snapshot, "
    "job_hash, remediations, cached, fail_mode_applied, extra, request"
)


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"s{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not raw.startswith("s"):
            raise ValueError(cursor)
        return int(raw[1:])
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"bad cursor `{cursor}`") from exc


class SQLiteStore(Store):
    def __init__(
        self,
        *,
        path: str | Path,
        audit_key: SigningKey | None = None,
        checkpoint_every: int = 100,
        audit: bool = True,
    ) -> None:
        self.path = str(path)
        self._db: sqlite3.Connection | None = None
        self._commit: GroupCommit | None = None
        # The head (seq, hash) of each audit stream, so an append needs no SELECT. Only this
        # process writes the file; `_journal` undoes a rolled-back write's moves (see `_write`).
        self._heads: dict[str, tuple[int, str]] = {}
        self._journal: list[tuple[str, tuple[int, str] | None]] = []
        # Authentication looks the key up on every request. Revoking through this store drops
        # the entry at once; the short TTL bounds how stale a key revoked elsewhere can be.
        self._keys: dict[str, tuple[float, Identity]] = {}
        # A second connection, used only on one background thread: WAL checkpoints and the
        # slow aggregate reads behind the queue metrics (sqlite releases the GIL meanwhile).
        self._background: ThreadPoolExecutor | None = None
        self._reader: sqlite3.Connection | None = None
        self._uncheckpointed = 0
        self._checkpointing = False
        self.audit_key = audit_key
        self.checkpoint_every = checkpoint_every
        self.audit_enabled = audit

    @property
    def db(self) -> sqlite3.Connection:
        assert self._db is not None, "store is not open"
        return self._db

    async def open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=5000")
        db.execute("PRAGMA foreign_keys=ON")
        # Checkpoints (copying the WAL into the database file, with an fsync) run on the
        # background thread below, not inside a request's commit where they stall the loop.
        db.execute("PRAGMA wal_autocheckpoint=0")
        db.executescript(_SCHEMA)
        _migrate(db)
        self._db = db
        self._commit = GroupCommit(db, on_abort=self._heads.clear, on_commit=self._committed)
        self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gatehouse-sqlite")

    async def close(self) -> None:
        if self._background is not None:
            self._background.submit(self._close_reader)
            self._background.shutdown(wait=True)
            self._background = None
        if self._db is not None:
            if self._commit is not None:
                self._commit.flush()
            if self.audit_enabled and self.audit_key is not None:
                self._checkpoint_heads()
            self._db.close()
            self._db = None

    # audit --------------------------------------------------------------------------------
    def _append_audit(self, db: sqlite3.Connection, events: Sequence[AuditEvent]) -> None:
        """Chain `events` onto their streams, inside the caller's transaction."""
        if not self.audit_enabled:
            return
        actor, request_id = current_actor.get(), current_request_id.get()
        for ev in events:
            # Store exactly the JSON that was hashed, so verification re-reads the same values.
            text = _dumps(ev.data)
            data = _loads(text)
            head = self._heads.get(ev.stream) or self._read_head(db, ev.stream)
            for retry in (False, True):
                seq, prev = (head[0] + 1, head[1]) if head else (1, GENESIS)
                ts = time.time()
                fields = {
                    "stream": ev.stream,
                    "seq": seq,
                    "ts": ts,
                    "type": ev.type,
                    "actor": actor,
                    "request_id": request_id,
                    "data": data,
                    "prev_hash": prev,
                }
                digest = entry_hash(fields)
                try:
                    db.execute(
                        "INSERT INTO audit (stream, seq, ts, type, actor, request_id, data, prev_hash, "
                        "hash) VALUES (?,?,?,?,?,?,?,?,?)",
                        (ev.stream, seq, ts, ev.type, actor, request_id, text, prev, digest),
                    )
                    break
                except sqlite3.IntegrityError:
                    # Someone else moved the stream (a second process on the same file, against
                    # advice): chain onto the real head instead of failing the caller's write.
                    if retry:
                        raise
                    head = self._read_head(db, ev.stream)
            self._journal.append((ev.stream, self._heads.get(ev.stream)))
            self._heads[ev.stream] = (seq, digest)
            if self.audit_key is not None and seq % self.checkpoint_every == 0:
                self._insert_checkpoint(db, ev.stream, seq, digest)

    @staticmethod
    def _read_head(db: sqlite3.Connection, stream: str) -> tuple[int, str] | None:
        row = db.execute(
            "SELECT seq, hash FROM audit WHERE stream = ? ORDER BY seq DESC LIMIT 1", (stream,)
        ).fetchone()
        return (row[0], row[1]) if row else None

    def _insert_checkpoint(self, db: sqlite3.Connection, stream: str, seq: int, digest: str) -> None:
        assert self.audit_key is not None
        cp = sign_checkpoint(self.audit_key, stream, seq, digest, time.time())
        db.execute(
            "INSERT INTO audit_checkpoints (stream, seq, hash, time, key_id, sig) VALUES (?,?,?,?,?,?)",
            (cp.stream, cp.seq, cp.hash, cp.time, cp.key_id, cp.sig),
        )

    def _checkpoint_heads(self) -> None:
        """Sign the head of every stream that moved since its last checkpoint (at shutdown)."""
        with self._tx() as db:
            heads = db.execute(
                "SELECT a.stream, a.seq, a.hash FROM audit a JOIN "
                "(SELECT stream, MAX(seq) AS seq FROM audit GROUP BY stream) h "
                "ON a.stream = h.stream AND a.seq = h.seq"
            ).fetchall()
            for stream, seq, digest in heads:
                last = db.execute(
                    "SELECT MAX(seq) FROM audit_checkpoints WHERE stream = ?", (stream,)
                ).fetchone()[0]
                if last is None or last < seq:
                    self._insert_checkpoint(db, stream, seq, digest)

    async def append_audit(self, events: Sequence[AuditEvent]) -> None:
        await self._write(lambda db: self._append_audit(db, events))

    async def audit_streams(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT DISTINCT stream FROM audit ORDER BY stream")]

    async def audit_entries(
        self,
        stream: str,
        *,
        since_seq: int = 0,
        since_ts: float | None = None,
        limit: int | None = None,
    ) -> list[Entry]:
        sql = (
            "SELECT stream, seq, ts, type, actor, request_id, data, prev_hash, hash FROM audit "
            "WHERE stream = ? AND seq > ?"
        )
        args: list[Any] = [stream, since_seq]
        if since_ts is not None:
            sql += " AND ts >= ?"
            args.append(since_ts)
        sql += " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [
            Entry(
                stream=r[0],
                seq=r[1],
                ts=r[2],
                type=r[3],
                actor=r[4],
                request_id=r[5],
                data=_loads(r[6]),
                prev_hash=r[7],
                hash=r[8],
            )
            for r in self.db.execute(sql, args).fetchall()
        ]

    async def audit_checkpoints(self, stream: str) -> list[Checkpoint]:
        rows = self.db.execute(
            "SELECT stream, seq, hash, time, key_id, sig FROM audit_checkpoints WHERE stream = ? ORDER BY id",
            (stream,),
        ).fetchall()
        return [Checkpoint(*r) for r in rows]

    def _tx(self) -> _Tx:
        return _Tx(self.db)

    def _write(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Run `fn(db)` in the next group commit (its own savepoint); resolves after COMMIT."""
        assert self._commit is not None, "store is not open"

        def op(db: sqlite3.Connection) -> T:
            self._journal = []
            try:
                return fn(db)
            except BaseException:
                # Its savepoint is rolled back: so are the audit heads it moved.
                for stream, head in reversed(self._journal):
                    if head is None:
                        self._heads.pop(stream, None)
                    else:
                        self._heads[stream] = head
                raise

        return self._commit.write(op)

    # identities ---------------------------------------------------------------------------
    async def add_identity(self, identity: Identity, key_hash: str) -> None:
        await self._write(lambda db: self._add_identity(db, identity, key_hash))

    def _add_identity(self, db: sqlite3.Connection, identity: Identity, key_hash: str) -> None:
        db.execute(
            "INSERT INTO identities (id, name, tenant, roles, topics, capabilities, key_hash, "
            "created_at, created_by, revoked_at, rate_limit) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                identity.id,
                identity.name,
                identity.tenant,
                _dumps(list(identity.roles)),
                _dumps(list(identity.topics)),
                _dumps(list(identity.capabilities)),
                key_hash,
                identity.created_at,
                identity.created_by,
                identity.revoked_at,
                identity.rate_limit,
            ),
        )
        self._append_audit(
            db,
            [
                AuditEvent(
                    SYSTEM,
                    "identity.created",
                    {**identity.to_public(), "tenant": identity.tenant},
                )
            ],
        )

    async def identity_by_key_hash(self, key_hash: str) -> Identity | None:
        now_ = time.monotonic()
        cached = self._keys.get(key_hash)
        if cached is not None and cached[0] > now_:
            return cached[1]
        row = self.db.execute(
            f"SELECT {_IDENTITY_COLUMNS} FROM identities WHERE key_hash = ?", (key_hash,)
        ).fetchone()
        if row is None:
            return None  # unknown keys are not cached: a flood of them cannot evict real ones
        identity = _identity(row)
        if len(self._keys) >= _KEY_CACHE_SIZE:
            self._keys.clear()
        self._keys[key_hash] = (now_ + _KEY_CACHE_TTL, identity)
        return identity

    async def get_identity(self, identity_id: str) -> Identity | None:
        row = self.db.execute(
            f"SELECT {_IDENTITY_COLUMNS} FROM identities WHERE id = ?", (identity_id,)
        ).fetchone()
        return _identity(row) if row else None

    async def list_identities(self, tenant: str | None) -> list[Identity]:
        if tenant is None:
            rows = self.db.execute(f"SELECT {_IDENTITY_COLUMNS} FROM identities ORDER BY created_at")
        else:
            rows = self.db.execute(
                f"SELECT {_IDENTITY_COLUMNS} FROM identities WHERE tenant = ? ORDER BY created_at",
                (tenant,),
            )
        return [_identity(r) for r in rows.fetchall()]

    async def revoke_identity(self, identity_id: str, at: float) -> bool:
        def revoke(db: sqlite3.Connection) -> bool:
            cur = db.execute(
                "UPDATE identities SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (at, identity_id),
            )
            if cur.rowcount == 1:
                self._append_audit(db, [AuditEvent(SYSTEM, "identity.revoked", {"id": identity_id})])
            return cur.rowcount == 1

        revoked = await self._write(revoke)
        # Forget the key once the revocation is committed: the next lookup reads it revoked.
        self._keys = {h: v for h, v in self._keys.items() if v[1].id != identity_id}
        return revoked

    # incident containments ----------------------------------------------------------------
    async def add_containment(self, containment: Containment) -> None:
        c = containment

        def add(db: sqlite3.Connection) -> None:
            db.execute(
                f"INSERT INTO containments ({_CONTAINMENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)",
                (c.id, c.kind, c.target, c.reason, c.created_at, c.created_by, c.lifted_at, c.lifted_by),
            )
            self._append_audit(db, [AuditEvent(SYSTEM, "incident.contained", c.to_public())])

        try:
            await self._write(add)
        except sqlite3.IntegrityError:
            raise Conflict(f"{c.kind} `{c.target}` is already contained", code="already_contained") from None

    async def lift_containment(self, containment_id: str, *, at: float, by: str) -> Containment | None:
        def lift(db: sqlite3.Connection) -> Containment | None:
            cur = db.execute(
                "UPDATE containments SET lifted_at = ?, lifted_by = ? WHERE id = ? AND lifted_at IS NULL",
                (at, by, containment_id),
            )
            if cur.rowcount != 1:
                return None
            row = db.execute(
                f"SELECT {_CONTAINMENT_COLUMNS} FROM containments WHERE id = ?", (containment_id,)
            ).fetchone()
            lifted = Containment(*row)
            self._append_audit(db, [AuditEvent(SYSTEM, "incident.lifted", lifted.to_public())])
            return lifted

        return await self._write(lift)

    async def containments(self, *, active_only: bool) -> list[Containment]:
        sql = f"SELECT {_CONTAINMENT_COLUMNS} FROM containments"
        if active_only:
            sql += " WHERE lifted_at IS NULL"
        return [Containment(*r) for r in self.db.execute(sql + " ORDER BY created_at").fetchall()]

    # jobs ---------------------------------------------------------------------------------
    async def insert_job(self, job: Job, record: DecisionRecord, approval: Approval | None = None) -> Job:
        try:
            return await self._write(lambda db: self._insert_job(db, job, record, approval))
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"job conflicts with a stored one: {exc}", code="duplicate_job") from None

    def _insert_job(
        self, db: sqlite3.Connection, job: Job, record: DecisionRecord, approval: Approval | None
    ) -> Job:
        cur = db.execute(
            f"INSERT INTO jobs ({_JOB_COLUMNS}) VALUES (NULL,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                job.id,
                job.tenant,
                job.identity_id,
                job.topic,
                job.prompt,
                _dumps(job.labels),
                _dumps(job.meta),
                _dumps(job.attachments),
                job.status,
                job.job_hash,
                job.idempotency_key,
                job.policy_snapshot,
                _dumps(list(job.requester_roles)),
                _dumps(job.derived),
                _dumps(job.result) if job.result is not None else None,
                job.error,
                job.lease_owner,
                job.lease_expires_at,
                job.attempts,
                job.remediated_from,
                job.created_at,
                job.updated_at,
            ),
        )
        _insert_record(db, record)
        if approval is not None:
            _insert_approval(db, approval)
        self._append_audit(db, [job_submitted_event(job), *decision_event(record)])
        return job.evolve(seq=cur.lastrowid or 0)

    async def get_job(self, job_id: str, tenant: str | None = None) -> Job | None:
        if tenant is None:
            row = self.db.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        else:
            row = self.db.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ? AND tenant = ?", (job_id, tenant)
            )
        found = row.fetchone()
        return _job(found) if found else None

    async def job_by_idempotency_key(self, identity_id: str, key: str) -> Job | None:
        row = self.db.execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE identity_id = ? AND idempotency_key = ?",
            (identity_id, key),
        ).fetchone()
        return _job(row) if row else None

    async def list_jobs(
        self,
        tenant: str | None,
        *,
        status: str | None = None,
        topic: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> JobPage:
        where: list[str] = []
        args: list[Any] = []
        if tenant is not None:
            where.append("tenant = ?")
            args.append(tenant)
        if status:
            where.append("status = ?")
            args.append(status)
        if topic:
            where.append("topic = ?")
            args.append(topic)
        if cursor:
            where.append("seq < ?")
            args.append(decode_cursor(cursor))
        sql = f"SELECT {_JOB_COLUMNS} FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq DESC LIMIT ?"
        args.append(limit + 1)
        rows = self.db.execute(sql, args).fetchall()
        jobs = [_job(r) for r in rows[:limit]]
        next_cursor = encode_cursor(jobs[-1].seq) if len(rows) > limit else None
        return JobPage(jobs=jobs, next_cursor=next_cursor)

    async def transition(
        self,
        job_id: str,
        event: str,
        *,
        record: DecisionRecord | None = None,
        at: float,
        new_approval: Approval | None = None,
        approval_update: tuple[str, str, dict[str, Any]] | None = None,
        consume_nonce: str | None = None,
        count_attempt: bool = False,
        **fields: Any,
    ) -> Job | None:
        allowed = sources(event)
        if not allowed:
            raise ValueError(f"unknown event `{event}`")

        def move(db: sqlite3.Connection) -> Job | None:
            row = db.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return None
            job = _job(row)
            if job.status not in allowed:
                return None
            new_status = next_state(job.status, event)
            sets = ["status = ?", "updated_at = ?"]
            args: list[Any] = [new_status, at]
            changes = dict(fields)
            if count_attempt:
                changes["attempts"] = job.attempts + 1
            for key, value in changes.items():
                if key not in _UPDATABLE:
                    raise ValueError(f"field `{key}` cannot be updated")
                sets.append(f"{key} = ?")
                args.append(_dumps(value) if key in _JSON_FIELDS and value is not None else value)
            args += [job_id, job.status]
            cur = db.execute(f"UPDATE jobs SET {', '.join(sets)} WHERE id = ? AND status = ?", args)
            if cur.rowcount != 1:
                return None
            if not self._approval_ops(db, new_approval, approval_update, consume_nonce, at):
                raise _Abort  # roll the job transition back with it
            events = []
            if record is not None:
                _insert_record(db, record)
                events += decision_event(record)
            events.append(state_event(job, job.status, new_status, event, changes))
            self._append_audit(db, events)
            return job.evolve(status=new_status, updated_at=at, **changes)

        try:
            return await self._write(move)
        except _Abort:
            return None

    def _approval_ops(
        self,
        db: sqlite3.Connection,
        new: Approval | None,
        update: tuple[str, str, dict[str, Any]] | None,
        nonce: str | None,
        at: float,
    ) -> bool:
        """Approval changes that travel with a job transition; False means "abort it all"."""
        events: list[AuditEvent] = []
        if nonce is not None:
            cur = db.execute(
                "UPDATE approvals SET consumed_at = ?, status = 'consumed' "
                "WHERE nonce = ? AND consumed_at IS NULL AND status = 'approved'",
                (at, nonce),
            )
            if cur.rowcount != 1:
                return False  # replayed: the nonce was used already
            events.append(AuditEvent(SYSTEM, "approval.consumed", {"nonce_sha256": _sha(nonce)}))
        if update is not None:
            approval_id, expect, changes = update
            sets = ", ".join(f"{k} = ?" for k in changes)
            values = [_dumps(v) if k == "token" and v is not None else v for k, v in changes.items()]
            cur = db.execute(
                f"UPDATE approvals SET {sets} WHERE id = ? AND status = ?",
                [*values, approval_id, expect],
            )
            if cur.rowcount != 1:
                return False
        if new is not None:
            _insert_approval(db, new)
        if events:
            self._append_audit(db, events)
        return True

    async def approval(self, approval_id: str) -> Approval | None:
        row = self.db.execute(
            f"SELECT {_APPROVAL_COLUMNS} FROM approvals WHERE id = ?", (approval_id,)
        ).fetchone()
        return _approval(row) if row else None

    async def latest_approval(self, job_id: str) -> Approval | None:
        row = self.db.execute(
            f"SELECT {_APPROVAL_COLUMNS} FROM approvals WHERE job_id = ? ORDER BY seq DESC LIMIT 1",
            (job_id,),
        ).fetchone()
        return _approval(row) if row else None

    async def list_approvals(
        self, tenant: str | None, status: str | None, limit: int = 200
    ) -> list[Approval]:
        where: list[str] = []
        args: list[Any] = []
        if tenant is not None:
            where.append("tenant = ?")
            args.append(tenant)
        if status is not None:
            where.append("status = ?")
            args.append(status)
        sql = f"SELECT {_APPROVAL_COLUMNS} FROM approvals"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self.db.execute(sql + " ORDER BY seq LIMIT ?", [*args, limit]).fetchall()
        return [_approval(r) for r in rows]

    async def overdue_approvals(self, at: float, limit: int = 100) -> list[Approval]:
        rows = self.db.execute(
            f"SELECT {_APPROVAL_COLUMNS} FROM approvals WHERE status = 'pending' AND expires_at < ? "
            "ORDER BY expires_at LIMIT ?",
            (at, limit),
        ).fetchall()
        return [_approval(r) for r in rows]

    async def queued_jobs(
        self, prefixes: Sequence[str], limit: int, *, tenant: str | None = None
    ) -> list[Job]:
        where = "status = 'queued'"
        args: list[Any] = []
        if tenant is not None:
            where += " AND tenant = ?"
            args.append(tenant)
        if prefixes and "" not in prefixes:
            # Topic prefixes become index range scans; the caller filters by the full glob.
            where += " AND (" + " OR ".join("(topic >= ? AND topic < ?)" for _ in prefixes) + ")"
            for p in prefixes:
                args += [p, p + "\uffff"]
        rows = self.db.execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE {where} ORDER BY seq LIMIT ?", [*args, limit]
        ).fetchall()
        return [_job(r) for r in rows]

    async def extend_lease(self, job_id: str, owner: str, expires_at: float, *, at: float) -> Job | None:
        def extend(db: sqlite3.Connection) -> int:
            cur = db.execute(
                "UPDATE jobs SET lease_expires_at = ?, updated_at = ? WHERE id = ? "
                "AND lease_owner = ? AND status = 'running'",
                (expires_at, at, job_id, owner),
            )
            return cur.rowcount

        if await self._write(extend) != 1:
            return None
        return await self.get_job(job_id)

    async def expired_leases(self, at: float, limit: int = 100) -> list[Job]:
        rows = self.db.execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE lease_expires_at IS NOT NULL "
            "AND lease_expires_at < ? AND status IN ('dispatched', 'running') LIMIT ?",
            (at, limit),
        ).fetchall()
        return [_job(r) for r in rows]

    async def add_decision(self, record: DecisionRecord) -> None:
        def add(db: sqlite3.Connection) -> None:
            _insert_record(db, record)
            self._append_audit(db, decision_event(record))

        await self._write(add)

    async def decisions(self, job_id: str, tenant: str | None = None) -> list[DecisionRecord]:
        sql, args = f"SELECT {_RECORD_COLUMNS} FROM decisions WHERE job_id = ?", [job_id]
        if tenant is not None:
            sql += " AND tenant = ?"
            args.append(tenant)
        return [_record(r) for r in self.db.execute(sql + " ORDER BY seq", args).fetchall()]

    async def decision(self, decision_id: str, tenant: str | None = None) -> DecisionRecord | None:
        sql, args = f"SELECT {_RECORD_COLUMNS} FROM decisions WHERE decision_id = ?", [decision_id]
        if tenant is not None:
            sql += " AND tenant = ?"
            args.append(tenant)
        row = self.db.execute(sql, args).fetchone()
        return _record(row) if row else None

    async def list_decisions(
        self,
        tenant: str | None,
        *,
        stage: str | None = None,
        result: str | None = None,
        rule_id: str | None = None,
        since: float | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> DecisionPage:
        where: list[str] = []
        args: list[Any] = []
        for column, value in (("tenant", tenant), ("stage", stage), ("result", result), ("rule_id", rule_id)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if since is not None:
            where.append("timestamp >= ?")
            args.append(since)
        if cursor:
            where.append("seq < ?")
            args.append(decode_cursor(cursor))
        sql = f"SELECT seq, {_RECORD_COLUMNS} FROM decisions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self.db.execute(sql + " ORDER BY seq DESC LIMIT ?", [*args, limit + 1]).fetchall()
        records = [_record(r[1:]) for r in rows[:limit]]
        next_cursor = encode_cursor(rows[limit - 1][0]) if len(rows) > limit else None
        return DecisionPage(decisions=records, next_cursor=next_cursor)

    async def count_by_status(self, tenant: str | None = None) -> dict[str, int]:
        args: tuple[str, ...] = ()
        if tenant is None:
            sql = "SELECT status, COUNT(*) FROM jobs GROUP BY status"
        else:
            sql, args = "SELECT status, COUNT(*) FROM jobs WHERE tenant = ? GROUP BY status", (tenant,)
        rows = await self._in_background(lambda db: db.execute(sql, args).fetchall())
        return {status: n for status, n in rows}

    async def oldest_in_state(self, status: str) -> float | None:
        sql = "SELECT MIN(updated_at) FROM jobs WHERE status = ?"
        row = await self._in_background(lambda db: db.execute(sql, (status,)).fetchone())
        return row[0] if row else None

    # background thread ----------------------------------------------------------------------
    async def _in_background(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run a read on the background connection: an index scan over a big table must not
        hold up the event loop."""
        assert self._background is not None, "store is not open"
        return await asyncio.get_running_loop().run_in_executor(self._background, lambda: fn(self._reading()))

    def _reading(self) -> sqlite3.Connection:
        if self._reader is None:
            self._reader = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._reader.execute("PRAGMA busy_timeout=5000")
        return self._reader

    def _close_reader(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def _committed(self, writes: int) -> None:
        """After each group commit: every ~1,000 writes, a passive checkpoint in the background
        (it never blocks writers; a write that finds the WAL fully copied starts it over)."""
        self._uncheckpointed += writes
        if self._uncheckpointed < _CHECKPOINT_EVERY or self._checkpointing or self._background is None:
            return
        self._uncheckpointed = 0
        self._checkpointing = True

        def checkpoint() -> None:
            try:
                self._reading().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            except sqlite3.Error:
                log.exception("WAL checkpoint failed (retried after the next writes)")
            finally:
                self._checkpointing = False

        self._background.submit(checkpoint)

    # policy -------------------------------------------------------------------------------
    async def save_policy(self, row: PolicyRow) -> None:
        await self._write(lambda db: self._save_policy(db, row))

    def _save_policy(self, db: sqlite3.Connection, row: PolicyRow) -> None:
        db.execute(
            "INSERT INTO policies (snapshot, text, signature, serial, installed_at, installed_by) "
            "VALUES (?,?,?,?,?,?)",
            (
                row.snapshot,
                row.text,
                _dumps(row.signature) if row.signature is not None else None,
                row.serial,
                row.installed_at,
                row.installed_by,
            ),
        )
        sig = row.signature or {}
        self._append_audit(
            db,
            [
                AuditEvent(
                    SYSTEM,
                    "policy.installed",
                    {
                        "snapshot": row.snapshot,
                        "serial": row.serial,
                        "signed": row.signature is not None,
                        "key_id": sig.get("key_id"),
                        "installed_by": row.installed_by,
                        "warning": None if row.signature else "unsigned bundle accepted (no trusted keys)",
                    },
                )
            ],
        )

    async def active_policy(self) -> PolicyRow | None:
        rows = await self.policy_history(limit=1)
        return rows[0] if rows else None

    async def policy_history(self, limit: int = 20) -> list[PolicyRow]:
        rows = self.db.execute(
            "SELECT snapshot, text, signature, serial, installed_at, installed_by FROM policies "
            "ORDER BY seq DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [
            PolicyRow(
                snapshot=snapshot,
                text=text,
                signature=_loads(signature) if signature else None,
                serial=serial,
                installed_at=installed_at,
                installed_by=installed_by,
            )
            for snapshot, text, signature, serial, installed_at, installed_by in rows
        ]


_CONTAINMENT_COLUMNS = "id, kind, target, reason, created_at, created_by, lifted_at, lifted_by"

_APPROVAL_COLUMNS = (
    "id, job_id, tenant, job_hash, policy_snapshot, rule_id, reason, status, requested_at, "
    "expires_at, ttl, requested_by, approver_id, decided_at, comment, token, nonce, consumed_at"
)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _approval(row: tuple[Any, ...]) -> Approval:
    values = list(row)
    values[15] = _loads(values[15]) if values[15] else None
    names = [c.strip() for c in _APPROVAL_COLUMNS.split(",")]
    return Approval(**dict(zip(names, values, strict=True)))


def _insert_approval(db: sqlite3.Connection, a: Approval) -> None:
    db.execute(
        f"INSERT INTO approvals ({_APPROVAL_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            a.id,
            a.job_id,
            a.tenant,
            a.job_hash,
            a.policy_snapshot,
            a.rule_id,
            a.reason,
            a.status,
            a.requested_at,
            a.expires_at,
            a.ttl,
            a.requested_by,
            a.approver_id,
            a.decided_at,
            a.comment,
            _dumps(a.token) if a.token else None,
            a.nonce,
            a.consumed_at,
        ),
    )


def _insert_record(db: sqlite3.Connection, r: DecisionRecord) -> None:
    db.execute(
        f"INSERT INTO decisions ({_RECORD_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            r.decision_id,
            r.job_id,
            r.tenant,
            r.timestamp,
            r.result,
            r.rule_id,
            r.reason,
            r.stage,
            r.policy_snapshot,
            r.job_hash,
            _dumps(r.remediations),
            int(r.cached),
            int(r.fail_mode_applied),
            _dumps(r.extra),
            _dumps(r.request) if r.request is not None else None,
        ),
    )


class _Abort(Exception):
    """Raised inside a transaction to roll it back and answer "did not happen"."""


class _Tx:
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

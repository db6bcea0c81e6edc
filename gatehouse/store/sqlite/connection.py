"""The SQLite connection the driver's modules share: opening, group commit, the audit sink.

`synchronous=NORMAL` in WAL mode keeps every committed transaction across a process crash
(`kill -9`); only an OS crash or power loss can drop the last commits. Calls run inline on the
event loop: each is a few hundred microseconds, cheaper than a thread hop. Writes are grouped
(`_commit.GroupCommit`): those queued in the same turn of the loop share one commit, each in its
own savepoint, and none is acknowledged before that commit.

Audit entries are computed by the backend-neutral `AuditWriter`; this module gives it a sink
over the current transaction (`_Sink`). Only this process writes the file, so the writer keeps
the stream heads in memory; a write whose savepoint is rolled back undoes its head moves
(`AuditWriter.atomic`), and a batch rolled back as a whole drops them (`forget`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from gatehouse.audit.chain import Checkpoint, Entry, Root
from gatehouse.audit.events import AuditEvent
from gatehouse.audit.witness import Witness
from gatehouse.audit.writer import AuditWriter, Head, HeadMoved
from gatehouse.crypto import SigningKey
from gatehouse.store._keycache import KeyCache
from gatehouse.store.sqlite import rows
from gatehouse.store.sqlite._commit import GroupCommit
from gatehouse.store.sqlite.schema import SCHEMA, Tx, migrate

__all__ = ["SQLiteBase"]

log = logging.getLogger("gatehouse.store")

T = TypeVar("T")

_WAL_CHECKPOINT_EVERY = 1_000  # writes


def _private_files(path: str) -> None:
    """The database and its WAL and SHM files readable by this user alone (0600): they hold
    prompts, results and quarantined originals. The database file is created here, so SQLite
    gives the WAL and SHM files it creates the same mode; files an older version left readable
    are narrowed."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for name in (path, path + "-wal", path + "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(name, 0o600)


class _Sink:
    """The audit tables inside one transaction, as the writer sees them."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def head(self, stream: str) -> Head | None:
        # `BEGIN IMMEDIATE` already holds the database's write lock: nobody moves the head
        # between this read and the insert that follows.
        row = self.db.execute(
            "SELECT seq, hash FROM audit WHERE stream = ? ORDER BY seq DESC LIMIT 1", (stream,)
        ).fetchone()
        return Head(row[0], row[1]) if row else None

    def insert_entry(self, entry: Entry, data_json: str) -> None:
        e = entry
        try:
            self.db.execute(
                "INSERT INTO audit (stream, seq, ts, type, actor, request_id, data, prev_hash, hash) "
                "VALUES (?,?,?,?,?,?,?,?,?)",
                (e.stream, e.seq, e.ts, e.type, e.actor, e.request_id, data_json, e.prev_hash, e.hash),
            )
        except sqlite3.IntegrityError:
            raise HeadMoved(e.stream) from None

    def insert_checkpoint(self, cp: Checkpoint) -> None:
        self.db.execute(
            "INSERT INTO audit_checkpoints (stream, seq, hash, time, key_id, sig, prev) "
            "VALUES (?,?,?,?,?,?,?)",
            (cp.stream, cp.seq, cp.hash, cp.time, cp.key_id, cp.sig, cp.prev),
        )

    def last_checkpoint(self, stream: str) -> Checkpoint | None:
        row = self.db.execute(
            f"SELECT {rows.CHECKPOINT_COLUMNS} FROM audit_checkpoints WHERE stream = ? "
            "ORDER BY id DESC LIMIT 1",
            (stream,),
        ).fetchone()
        return rows.checkpoint(row) if row else None

    def last_checkpoints(self) -> dict[str, Checkpoint]:
        found = self.db.execute(
            f"SELECT {rows.CHECKPOINT_COLUMNS} FROM audit_checkpoints WHERE id IN "
            "(SELECT MAX(id) FROM audit_checkpoints GROUP BY stream)"
        ).fetchall()
        return {cp.stream: cp for cp in map(rows.checkpoint, found)}

    def last_root(self) -> Root | None:
        row = self.db.execute(
            f"SELECT {rows.ROOT_COLUMNS} FROM audit_roots ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return rows.root(row) if row else None

    def insert_root(self, root: Root) -> None:
        self.db.execute(
            "INSERT INTO audit_roots (seq, time, prev, heads, key_id, sig, final) VALUES (?,?,?,?,?,?,?)",
            (root.seq, root.time, root.prev, rows.dumps(root.heads), root.key_id, root.sig, int(root.final)),
        )

    def unsealed(self) -> list[tuple[str, Head]]:
        rows = self.db.execute(
            "SELECT a.stream, a.seq, a.hash FROM audit a JOIN "
            "(SELECT stream, MAX(seq) AS seq FROM audit GROUP BY stream) h "
            "ON a.stream = h.stream AND a.seq = h.seq "
            "WHERE a.seq > COALESCE((SELECT MAX(c.seq) FROM audit_checkpoints c "
            "WHERE c.stream = a.stream), 0) ORDER BY a.stream"
        ).fetchall()
        return [(stream, Head(seq, digest)) for stream, seq, digest in rows]


class SQLiteBase:
    """Connection, group commit, background thread and audit writer: what every concern uses."""

    def __init__(
        self,
        *,
        path: str | Path,
        audit_key: SigningKey | None = None,
        checkpoint_every: int = 100,
        audit: bool = True,
        audit_witness: Witness | None = None,
    ) -> None:
        self.path = str(path)
        self._db: sqlite3.Connection | None = None
        self._commit: GroupCommit | None = None
        self.writer = AuditWriter(
            key=audit_key, checkpoint_every=checkpoint_every, enabled=audit, witness=audit_witness
        )
        self._keys = KeyCache()
        # A second connection, used only on one background thread: WAL checkpoints and the
        # slow aggregate reads behind the queue metrics (sqlite releases the GIL meanwhile).
        self._background: ThreadPoolExecutor | None = None
        self._reader: sqlite3.Connection | None = None
        self._uncheckpointed = 0
        self._checkpointing = False

    @property
    def audit_key(self) -> SigningKey | None:
        return self.writer.key

    @property
    def db(self) -> sqlite3.Connection:
        assert self._db is not None, "store is not open"
        return self._db

    async def open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            _private_files(self.path)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=5000")
        db.execute("PRAGMA foreign_keys=ON")
        # Checkpoints (copying the WAL into the database file, with an fsync) run on the
        # background thread below, not inside a request's commit where they stall the loop.
        db.execute("PRAGMA wal_autocheckpoint=0")
        db.executescript(SCHEMA)
        migrate(db)
        self._db = db
        self._commit = GroupCommit(db, on_abort=self.writer.forget, on_commit=self._committed)
        self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gatehouse-sqlite")

    async def close(self) -> None:
        if self._background is not None:
            self._background.submit(self._close_reader)
            self._background.shutdown(wait=True)
            self._background = None
        if self._db is not None:
            if self._commit is not None:
                self._commit.flush()
            if self.writer.enabled and self.writer.key is not None:
                with Tx(self._db) as db:
                    self.writer.seal(_Sink(db), final=True)
                self.writer.committed()
            self._db.close()
            self._db = None
        if self.writer.witness is not None:
            self.writer.witness.close()

    # writing --------------------------------------------------------------------------------
    def _append_audit(self, db: sqlite3.Connection, events: Sequence[AuditEvent]) -> None:
        """Chain `events` onto their streams, inside the caller's transaction."""
        self.writer.append(events, _Sink(db))

    def _seal(self, db: sqlite3.Connection) -> list[Checkpoint]:
        return self.writer.seal(_Sink(db))

    def _tx(self) -> Tx:
        return Tx(self.db)

    def _write(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Run `fn(db)` in the next group commit (its own savepoint); resolves after COMMIT."""
        assert self._commit is not None, "store is not open"

        def op(db: sqlite3.Connection) -> T:
            # Its savepoint is rolled back if it raises: so are the audit heads it moved.
            with self.writer.atomic():
                return fn(db)

        return self._commit.write(op)

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
        self.writer.committed()  # the witness hears of the heads this commit moved
        self._uncheckpointed += writes
        if self._uncheckpointed < _WAL_CHECKPOINT_EVERY or self._checkpointing or self._background is None:
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

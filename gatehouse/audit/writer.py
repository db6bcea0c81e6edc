"""The audit writer: stream heads, chaining and signed checkpoints, for every store driver.

Theory of operation: a driver never computes an audit entry. Inside the transaction of a change
it calls `AuditWriter.append(events, sink)`, where `sink` is the driver's view of that one
transaction (`AuditSink`): it reads a stream's head (a driver with several writers locks the
head row there: `SELECT ... FOR UPDATE`) and persists the entries and checkpoints the writer
hands it. The writer chains each event onto its stream's head (`entry_hash` over the fields,
`prev_hash` included), and every `checkpoint_every` entries signs the head.

`seal(sink)` signs the head of every stream that moved since its last checkpoint, then one
`Root` over the last checkpoint of every stream (each checkpoint and root chained to the one
before it). The plane calls it every couple of seconds (`Settings.audit_seal_interval`), stores
call it at close and at every export: a crash leaves at most a few seconds unsigned, and an
exported file always carries a signature over its last entry. Sealing is periodic, never per
request: an append costs a hash, not a signature.

Witness: with one (`audit.witness`), the writer hands it, after each commit (`committed()`),
the new head of every stream that moved and every checkpoint and root it signed. It lives
outside the data directory, append-only, so `audit verify --witness` finds a tail cut or
rewritten after the last sealing, or roots re-signed by someone holding the key.

Head cache: with `single_writer=True` (one process owns the file, as with SQLite) the writer
remembers each head and asks the sink only on a miss, so an append needs no read. The cache is
only right if a rolled-back transaction also rolls back the heads it moved: drivers wrap each
transaction (or savepoint) in `atomic()`, and call `forget()` when a whole batch is rolled back.
A sink that finds the (stream, seq) taken anyway (a second process on the same file, against
advice) raises `HeadMoved`; the writer re-reads the head and chains onto it once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import orjson

from gatehouse.audit.chain import GENESIS, Checkpoint, Entry, Root, entry_hash, sign_checkpoint, sign_root
from gatehouse.audit.events import AuditEvent, current_actor, current_request_id
from gatehouse.audit.witness import Witness
from gatehouse.crypto import SigningKey

__all__ = ["AuditSink", "AuditWriter", "Head", "HeadMoved"]


@dataclass(frozen=True, slots=True)
class Head:
    """The last entry of a stream: its sequence number and hash."""

    seq: int
    hash: str


class HeadMoved(Exception):
    """Raised by a sink whose (stream, seq) is taken: the head it gave was stale."""


class AuditSink(Protocol):
    """One transaction of a driver, as the writer sees it."""

    def head(self, stream: str) -> Head | None:
        """The stream's last entry (None for an empty stream), read (and locked) in this
        transaction."""

    def insert_entry(self, entry: Entry, data_json: str) -> None:
        """Persist `entry`; `data_json` is the exact text that was hashed. Raises `HeadMoved`
        when the stream already has an entry at `entry.seq`."""

    def insert_checkpoint(self, checkpoint: Checkpoint) -> None: ...

    def unsealed(self) -> list[tuple[str, Head]]:
        """Every stream whose head is past its last checkpoint, with that head."""

    def last_checkpoint(self, stream: str) -> Checkpoint | None:
        """The stream's newest checkpoint."""

    def last_checkpoints(self) -> dict[str, Checkpoint]:
        """The newest checkpoint of every stream."""

    def last_root(self) -> Root | None: ...

    def insert_root(self, root: Root) -> None: ...


class AuditWriter:
    def __init__(
        self,
        *,
        key: SigningKey | None,
        checkpoint_every: int = 100,
        enabled: bool = True,
        single_writer: bool = True,
        clock: Callable[[], float] = time.time,
        witness: Witness | None = None,
    ) -> None:
        self.key = key
        self.checkpoint_every = checkpoint_every
        self.enabled = enabled
        self.single_writer = single_writer
        self.clock = clock
        self.witness = witness
        # The last head this writer wrote per stream (read back as a cache only when
        # `single_writer`; always what the witness is told after a commit).
        self._heads: dict[str, Head] = {}
        # (stream, head before) for each move of the current transaction, to undo on rollback
        self._journal: list[tuple[str, Head | None]] = []
        # Streams moved since the last seal / the last commit told to the witness. A seal after
        # the first one looks at these only (no scan of the whole log every few seconds).
        self._moved: set[str] = set()
        self._unwitnessed: set[str] = set()
        self._scanned = False
        # Checkpoints and roots signed in the current batch, for the witness after its commit.
        self._signed: list[dict[str, object]] = []

    # transactions ---------------------------------------------------------------------------
    @contextmanager
    def atomic(self) -> Iterator[None]:
        """Undo the head moves made inside the block if it raises (its transaction or savepoint
        is rolled back with it)."""
        mark = len(self._journal)
        try:
            yield
        except BaseException:
            for stream, head in reversed(self._journal[mark:]):
                if head is None:
                    self._heads.pop(stream, None)
                else:
                    self._heads[stream] = head
            raise
        finally:
            del self._journal[mark:]

    def forget(self) -> None:
        """Drop every cached head (a whole batch was rolled back; the sink knows the truth)."""
        self._heads.clear()
        self._journal.clear()
        self._unwitnessed.clear()
        self._signed.clear()
        self._scanned = False  # the next seal scans the log again

    def committed(self) -> None:
        """The transaction (batch) committed: tell the witness the new heads and signatures."""
        if self.witness is None:
            self._unwitnessed.clear()
            self._signed.clear()
            return
        records: list[dict[str, object]] = []
        for stream in sorted(self._unwitnessed):
            head = self._heads.get(stream)
            if head is not None:
                records.append({"record": "head", "stream": stream, "seq": head.seq, "hash": head.hash})
        records += self._signed
        self._unwitnessed.clear()
        self._signed.clear()
        if records:
            self.witness.append(records)

    # writing --------------------------------------------------------------------------------
    def append(self, events: Sequence[AuditEvent], sink: AuditSink) -> list[Entry]:
        """Chain `events` onto their streams through `sink`, inside the caller's transaction."""
        if not self.enabled:
            return []
        actor, request_id = current_actor.get(), current_request_id.get()
        written = []
        for ev in events:
            # Store exactly the JSON that was hashed, so verification re-reads the same values.
            text = orjson.dumps(ev.data).decode()
            data = orjson.loads(text)
            head = self._head(ev.stream, sink)
            for retry in (False, True):
                seq, prev = (head.seq + 1, head.hash) if head else (1, GENESIS)
                ts = self.clock()
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
                entry = Entry(**fields, hash=entry_hash(fields))
                try:
                    sink.insert_entry(entry, text)
                    break
                except HeadMoved:
                    # Someone else moved the stream: chain onto the real head instead of
                    # failing the caller's write.
                    if retry:
                        raise
                    head = sink.head(ev.stream)
            self._move(ev.stream, Head(entry.seq, entry.hash))
            written.append(entry)
            if self.key is not None and entry.seq % self.checkpoint_every == 0:
                sink.insert_checkpoint(self._sign(sink, ev.stream, entry.seq, entry.hash))
        return written

    def seal(self, sink: AuditSink, *, final: bool = False) -> list[Checkpoint]:
        """Sign the head of every stream that moved since its last checkpoint, then a root over
        every stream's last checkpoint (every few seconds, at close and at export). Without a
        key there is nothing to sign. `final` (at close): the root says the writer stopped
        there, so an entry found after it was not written by this writer before it stopped."""
        if self.key is None:
            return []
        scan = not (self.single_writer and self._scanned)
        if scan:
            moved = sink.unsealed()
        else:
            moved = []
            for stream in sorted(self._moved):
                head = self._heads.get(stream) or sink.head(stream)
                last = sink.last_checkpoint(stream)
                if head is not None and head.seq > (last.seq if last else 0):
                    moved.append((stream, head))
        touched = set(self._moved)
        signed = []
        for stream, head in moved:
            cp = self._sign(sink, stream, head.seq, head.hash)
            sink.insert_checkpoint(cp)
            signed.append(cp)
        root = self._seal_root(sink, scan, touched | {cp.stream for cp in signed}, final=final)
        self._moved.clear()
        self._scanned = True
        if self.witness is not None:
            self._signed += [{"record": "checkpoint", **cp.to_dict()} for cp in signed]
            if root is None and scan:
                # The first sealing of a process tells the witness where the log stands even
                # when nothing moved: a witness added to an old log starts from its last root.
                root = sink.last_root()
            if root is not None:
                self._signed.append({"record": "root", **root.to_dict()})
        return signed

    def _seal_root(self, sink: AuditSink, scan: bool, touched: set[str], *, final: bool) -> Root | None:
        """A new root when any stream's last checkpoint changed since the last root."""
        assert self.key is not None
        last = sink.last_root()
        heads: dict[str, dict[str, object]] = {s: dict(h) for s, h in (last.heads if last else {}).items()}
        latest = (
            sink.last_checkpoints()
            if scan
            else {s: cp for s in touched if (cp := sink.last_checkpoint(s)) is not None}
        )
        for stream, cp in latest.items():
            heads[stream] = {"seq": cp.seq, "hash": cp.hash, "checkpoint": cp.digest}
        # A new root when a head moved, or to open (after a clean shutdown's final root) or
        # close the writer's run.
        unchanged = last is not None and heads == {s: dict(h) for s, h in last.heads.items()}
        if unchanged and last is not None and last.final == final:
            return None
        if last is None and not heads:
            return None
        root = sign_root(
            self.key,
            (last.seq + 1) if last else 1,
            self.clock(),
            last.digest if last else GENESIS,
            heads,
            final=final,
        )
        sink.insert_root(root)
        return root

    def _head(self, stream: str, sink: AuditSink) -> Head | None:
        if self.single_writer:
            cached = self._heads.get(stream)
            if cached is not None:
                return cached
        return sink.head(stream)

    def _move(self, stream: str, head: Head) -> None:
        self._journal.append((stream, self._heads.get(stream)))
        self._heads[stream] = head
        self._moved.add(stream)
        self._unwitnessed.add(stream)

    def _sign(self, sink: AuditSink, stream: str, seq: int, digest: str) -> Checkpoint:
        assert self.key is not None
        last = sink.last_checkpoint(stream)
        return sign_checkpoint(self.key, stream, seq, digest, self.clock(), last.digest if last else GENESIS)

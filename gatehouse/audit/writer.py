"""The audit writer: stream heads, chaining and signed checkpoints, for every store driver.

Theory of operation: a driver never computes an audit entry. Inside the transaction of a change
it calls `AuditWriter.append(events, sink)`, where `sink` is the driver's view of that one
transaction (`AuditSink`): it reads a stream's head (a driver with several writers locks the
head row there: `SELECT ... FOR UPDATE`) and persists the entries and checkpoints the writer
hands it. The writer chains each event onto its stream's head (`entry_hash` over the fields,
`prev_hash` included), and every `checkpoint_every` entries signs the head.

`seal(sink)` signs the head of every stream that moved since its last checkpoint. Stores call
it at close and at every export, so an exported file always carries a signature over its last
entry, even for a stream shorter than `checkpoint_every`.

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

from gatehouse.audit.chain import GENESIS, Checkpoint, Entry, entry_hash, sign_checkpoint
from gatehouse.audit.events import AuditEvent, current_actor, current_request_id
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


class AuditWriter:
    def __init__(
        self,
        *,
        key: SigningKey | None,
        checkpoint_every: int = 100,
        enabled: bool = True,
        single_writer: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.key = key
        self.checkpoint_every = checkpoint_every
        self.enabled = enabled
        self.single_writer = single_writer
        self.clock = clock
        self._heads: dict[str, Head] = {}
        # (stream, head before) for each move of the current transaction, to undo on rollback
        self._journal: list[tuple[str, Head | None]] = []

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
                sink.insert_checkpoint(self._sign(ev.stream, entry.seq, entry.hash))
        return written

    def seal(self, sink: AuditSink) -> list[Checkpoint]:
        """Sign the head of every stream that moved since its last checkpoint (at close and at
        export). Without a key there is nothing to sign."""
        if self.key is None:
            return []
        signed = []
        for stream, head in sink.unsealed():
            cp = self._sign(stream, head.seq, head.hash)
            sink.insert_checkpoint(cp)
            signed.append(cp)
        return signed

    def _head(self, stream: str, sink: AuditSink) -> Head | None:
        if self.single_writer:
            cached = self._heads.get(stream)
            if cached is not None:
                return cached
        return sink.head(stream)

    def _move(self, stream: str, head: Head) -> None:
        if self.single_writer:
            self._journal.append((stream, self._heads.get(stream)))
            self._heads[stream] = head

    def _sign(self, stream: str, seq: int, digest: str) -> Checkpoint:
        assert self.key is not None
        return sign_checkpoint(self.key, stream, seq, digest, self.clock())

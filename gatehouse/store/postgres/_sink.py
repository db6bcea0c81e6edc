"""The audit tables inside one PostgreSQL transaction, as the (synchronous) writer sees them.

The writer (`audit.writer.AuditWriter`) asks its sink for heads and checkpoints while it chains,
and the sink answers synchronously; a network database answers asynchronously. So the driver
reads first and writes after: `lock_heads` locks the head rows of the streams a change appends
to (`INSERT ... ON CONFLICT DO UPDATE` takes the row lock, creating a new stream's row; rows are
taken in stream order so two transactions never wait on each other crosswise) and reads what
the writer may ask; the writer then runs against that snapshot (`PrefetchedSink`), which keeps
what it is handed; `flush` writes it all in one round trip. Nobody else can move a locked head
before this transaction ends, so the snapshot stays true while the writer uses it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import asyncpg

from gatehouse.audit.chain import Checkpoint, Entry, Root
from gatehouse.audit.writer import Head
from gatehouse.store.sqlite import rows

__all__ = ["PrefetchedSink", "flush", "load_checkpoints", "lock_all_heads", "lock_heads"]

_LOCK_HEADS = (
    "INSERT INTO audit_heads (stream, seq, hash) SELECT s, 0, '' FROM unnest($1::text[]) AS s ORDER BY s "
    "ON CONFLICT (stream) DO UPDATE SET seq = audit_heads.seq RETURNING stream, seq, hash"
)
_LAST_CHECKPOINTS = (
    f"SELECT DISTINCT ON (stream) {rows.CHECKPOINT_COLUMNS} FROM audit_checkpoints "
    "WHERE stream = ANY($1::text[]) ORDER BY stream, id DESC"
)
_ALL_LAST_CHECKPOINTS = (
    f"SELECT DISTINCT ON (stream) {rows.CHECKPOINT_COLUMNS} FROM audit_checkpoints ORDER BY stream, id DESC"
)
_LAST_ROOT = f"SELECT {rows.ROOT_COLUMNS} FROM audit_roots ORDER BY seq DESC LIMIT 1"
_APPEND = (
    "WITH e AS (INSERT INTO audit (stream, seq, ts, type, actor, request_id, data, prev_hash, hash) "
    "SELECT * FROM unnest($1::text[], $2::bigint[], $3::float8[], $4::text[], $5::text[], $6::text[], "
    "$7::text[], $8::text[], $9::text[])) "
    "UPDATE audit_heads h SET seq = n.seq, hash = n.hash "
    "FROM unnest($10::text[], $11::bigint[], $12::text[]) AS n(stream, seq, hash) WHERE h.stream = n.stream"
)


class PrefetchedSink:
    """What the writer may ask, read under the head locks; what it writes, kept for `flush`."""

    def __init__(
        self,
        heads: dict[str, Head | None],
        checkpoints: dict[str, Checkpoint],
        root: Root | None = None,
    ) -> None:
        self.heads = heads
        self.checkpoints = checkpoints
        self.root = root
        self.entries: list[tuple[Entry, str]] = []
        self.new_checkpoints: list[Checkpoint] = []
        self.new_roots: list[Root] = []

    def head(self, stream: str) -> Head | None:
        if stream not in self.heads:
            raise KeyError(f"audit stream `{stream}` was not locked before the append")
        return self.heads[stream]

    def insert_entry(self, entry: Entry, data_json: str) -> None:
        # No HeadMoved here: the head row is locked, nobody else appends meanwhile.
        self.entries.append((entry, data_json))
        self.heads[entry.stream] = Head(entry.seq, entry.hash)

    def insert_checkpoint(self, checkpoint: Checkpoint) -> None:
        self.new_checkpoints.append(checkpoint)
        self.checkpoints[checkpoint.stream] = checkpoint

    def unsealed(self) -> list[tuple[str, Head]]:
        out = []
        for stream in sorted(self.heads):
            head = self.heads[stream]
            last = self.checkpoints.get(stream)
            if head is not None and head.seq > (last.seq if last else 0):
                out.append((stream, head))
        return out

    def last_checkpoint(self, stream: str) -> Checkpoint | None:
        return self.checkpoints.get(stream)

    def last_checkpoints(self) -> dict[str, Checkpoint]:
        return dict(self.checkpoints)

    def last_root(self) -> Root | None:
        return self.root

    def insert_root(self, root: Root) -> None:
        self.new_roots.append(root)
        self.root = root


def _head(seq: int, digest: str) -> Head | None:
    return Head(seq, digest) if seq > 0 else None  # seq 0: the row of a stream not yet written


async def lock_heads(conn: asyncpg.Connection, streams: Iterable[str]) -> PrefetchedSink:
    """Lock (creating) the heads of `streams` in this transaction."""
    found = await conn.fetch(_LOCK_HEADS, sorted(set(streams)))
    return PrefetchedSink({r[0]: _head(r[1], r[2]) for r in found}, {})


async def load_checkpoints(conn: asyncpg.Connection, sink: PrefetchedSink, streams: Iterable[str]) -> None:
    """The last checkpoints of `streams` (read after their heads are locked, so they are current)."""
    found = await conn.fetch(_LAST_CHECKPOINTS, sorted(set(streams)))
    sink.checkpoints.update({cp.stream: cp for cp in map(rows.checkpoint, found)})


async def lock_all_heads(conn: asyncpg.Connection) -> PrefetchedSink:
    """For a seal: every head locked, every stream's last checkpoint and the last root."""
    found = await conn.fetch("SELECT stream, seq, hash FROM audit_heads ORDER BY stream FOR UPDATE")
    heads = {r[0]: _head(r[1], r[2]) for r in found}
    last = {cp.stream: cp for cp in map(rows.checkpoint, await conn.fetch(_ALL_LAST_CHECKPOINTS))}
    root_row = await conn.fetchrow(_LAST_ROOT)
    return PrefetchedSink(heads, last, rows.root(root_row) if root_row else None)


async def flush(conn: asyncpg.Connection, sink: PrefetchedSink) -> None:
    """Write what the writer handed the sink, in this transaction."""
    if sink.entries:
        cols: list[list[Any]] = [[] for _ in range(9)]
        for e, text in sink.entries:
            for i, v in enumerate(
                (e.stream, e.seq, e.ts, e.type, e.actor, e.request_id, text, e.prev_hash, e.hash)
            ):
                cols[i].append(v)
        moved = {e.stream: e for e, _ in sink.entries}  # the last entry of each stream
        await conn.execute(
            _APPEND,
            *cols,
            list(moved),
            [e.seq for e in moved.values()],
            [e.hash for e in moved.values()],
        )
    if sink.new_checkpoints:
        await conn.executemany(
            "INSERT INTO audit_checkpoints (stream, seq, hash, time, key_id, sig, prev) "
            "VALUES ($1,$2,$3,$4,$5,$6,$7)",
            [(c.stream, c.seq, c.hash, c.time, c.key_id, c.sig, c.prev) for c in sink.new_checkpoints],
        )
    if sink.new_roots:
        await conn.executemany(
            "INSERT INTO audit_roots (seq, time, prev, heads, key_id, sig, final) "
            "VALUES ($1,$2,$3,$4,$5,$6,$7)",
            [
                (r.seq, r.time, r.prev, rows.dumps(r.heads), r.key_id, r.sig, int(r.final))
                for r in sink.new_roots
            ],
        )
    sink.entries.clear()
    sink.new_checkpoints.clear()
    sink.new_roots.clear()

"""The audit writer on its own (heads, chaining, checkpoints, rollback), and the seal an export
carries: a stream far shorter than `checkpoint_every` still verifies against a signature."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from gatehouse.audit.chain import GENESIS, Checkpoint, Entry, Root, verify_roots, verify_stream
from gatehouse.audit.events import AuditEvent, current_actor
from gatehouse.audit.verify import verify_file
from gatehouse.audit.writer import AuditWriter, Head, HeadMoved
from gatehouse.commands.audit import audit
from gatehouse.crypto import SigningKey, write_keypair
from gatehouse.domain.identity import Identity
from gatehouse.store.sqlite import SQLiteStore


class ListSink:
    """Audit rows in lists; `reads` counts head reads (the cache saves them)."""

    def __init__(self) -> None:
        self.entries: dict[str, list[Entry]] = {}
        self.checkpoints: list[Checkpoint] = []
        self.roots: list[Root] = []
        self.reads = 0

    def head(self, stream: str) -> Head | None:
        self.reads += 1
        rows = self.entries.get(stream)
        return Head(rows[-1].seq, rows[-1].hash) if rows else None

    def insert_entry(self, entry: Entry, data_json: str) -> None:
        rows = self.entries.setdefault(entry.stream, [])
        if entry.seq != len(rows) + 1:
            raise HeadMoved(entry.stream)
        assert json.loads(data_json) == entry.data
        rows.append(entry)

    def insert_checkpoint(self, checkpoint: Checkpoint) -> None:
        self.checkpoints.append(checkpoint)

    def unsealed(self) -> list[tuple[str, Head]]:
        out = []
        for stream, rows in sorted(self.entries.items()):
            signed = max((c.seq for c in self.checkpoints if c.stream == stream), default=0)
            if rows and rows[-1].seq > signed:
                out.append((stream, Head(rows[-1].seq, rows[-1].hash)))
        return out

    def last_checkpoint(self, stream: str) -> Checkpoint | None:
        return next((c for c in reversed(self.checkpoints) if c.stream == stream), None)

    def last_checkpoints(self) -> dict[str, Checkpoint]:
        return {c.stream: c for c in self.checkpoints}

    def last_root(self) -> Root | None:
        return self.roots[-1] if self.roots else None

    def insert_root(self, root: Root) -> None:
        self.roots.append(root)


def events(n: int, stream: str = "system") -> list[AuditEvent]:
    return [AuditEvent(stream, "test.event", {"n": i}) for i in range(n)]


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.generate()


def test_entries_chain_and_checkpoints_fall_every_n(key: SigningKey) -> None:
    sink, writer = ListSink(), AuditWriter(key=key, checkpoint_every=3)
    current_actor.set("idn-test")
    writer.append(events(4) + events(2, "tenant:t1"), sink)
    writer.append(events(3), sink)
    rows = sink.entries["system"]
    assert [e.seq for e in rows] == list(range(1, 8)) and rows[0].prev_hash == GENESIS
    assert rows[0].actor == "idn-test"
    assert [(c.stream, c.seq) for c in sink.checkpoints] == [("system", 3), ("system", 6)]
    report = verify_stream("system", rows, sink.checkpoints, {key.key_id: key.verify_key})
    assert report.ok and report.checkpoints == 2
    # One head read per stream: after that the writer knows the heads.
    assert sink.reads == 2


def test_a_rolled_back_write_undoes_its_head_moves(key: SigningKey) -> None:
    sink, writer = ListSink(), AuditWriter(key=key)
    writer.append(events(2), sink)
    kept = list(sink.entries["system"])
    with pytest.raises(RuntimeError), writer.atomic():
        writer.append(events(2), sink)
        del sink.entries["system"][2:]  # what the driver's rollback does to its rows
        raise RuntimeError("rolled back")
    writer.append(events(1), sink)
    assert sink.entries["system"][:2] == kept
    assert verify_stream("system", sink.entries["system"], [], {}).ok


def test_a_stale_head_is_read_again_once(key: SigningKey) -> None:
    sink, writer = ListSink(), AuditWriter(key=key)
    writer.append(events(1), sink)
    other = AuditWriter(key=key)  # a second writer on the same rows, against advice
    other.append(events(2), sink)
    writer.append(events(1), sink)  # its cached head is stale: it re-reads and chains on
    assert [e.seq for e in sink.entries["system"]] == [1, 2, 3, 4]
    assert verify_stream("system", sink.entries["system"], [], {}).ok


def test_without_the_head_cache_every_append_reads_the_head(key: SigningKey) -> None:
    sink, writer = ListSink(), AuditWriter(key=key, single_writer=False)
    for _ in range(3):
        writer.append(events(1), sink)
    assert sink.reads == 3  # a driver with several writers locks the head row each time


def test_seal_signs_only_moved_heads(key: SigningKey) -> None:
    sink, writer = ListSink(), AuditWriter(key=key, checkpoint_every=100)
    writer.append(events(2) + events(1, "tenant:t1"), sink)
    assert [(c.stream, c.seq) for c in writer.seal(sink)] == [("system", 2), ("tenant:t1", 1)]
    assert writer.seal(sink) == []
    writer.append(events(1), sink)
    assert [(c.stream, c.seq) for c in writer.seal(sink)] == [("system", 3)]
    assert AuditWriter(key=None).seal(sink) == []


def test_a_disabled_writer_writes_nothing(key: SigningKey) -> None:
    sink = ListSink()
    AuditWriter(key=key, enabled=False).append(events(3), sink)
    assert sink.entries == {}


def test_an_export_of_a_short_stream_checks_a_signature(tmp_path: Path) -> None:
    """The newcomer review: a stream under 100 entries had 0 signed checkpoints, so
    `verify --file --trust-key` printed ok without checking any signature."""
    data = tmp_path / "data"
    write_keypair(data / "keys" / "server")
    key = SigningKey.load(data / "keys" / "server.key")

    async def fill() -> None:
        # A server that never reached a checkpoint and never shut down cleanly: no seal yet.
        store = SQLiteStore(path=data / "gatehouse.db", audit_key=None)
        await store.open()
        for n in range(3):
            await store.add_identity(
                Identity(f"idn-{n}", f"a{n}", "t1", ("agent",), ("job.**",), (), 1.0), f"h{n}"
            )
        await store.close()

    asyncio.run(fill())
    out = tmp_path / "audit.jsonl"
    runner = CliRunner()
    exported = runner.invoke(audit, ["export", "--data-dir", str(data), "--to", str(out)])
    assert exported.exit_code == 0, exported.output
    pinned = {key.key_id: key.verify_key}
    reports = verify_file(out, pinned)
    assert [(r.stream, r.ok, r.checkpoints) for r in reports] == [("system", True, 1), ("(roots)", True, 0)]
    checked = runner.invoke(
        audit, ["verify", "--file", str(out), "--trust-key", str(data / "keys" / "server.pub")]
    )
    assert checked.exit_code == 0 and "1 checkpoints" in checked.output
    # A forged checkpoint is now caught, as is a forged chain it would have to cover.
    lines = out.read_text().splitlines()
    forged = [json.loads(line) for line in lines]
    for record in forged:
        if record.get("record") == "checkpoint":
            record["sig"] = SigningKey.generate().sign(b"not it")
    out.write_text("\n".join(json.dumps(r) for r in forged) + "\n")
    assert not all(r.ok for r in verify_file(out, pinned))


class ListWitness:
    def __init__(self) -> None:
        self.records: list[dict] = []

    def append(self, records) -> None:
        self.records += [dict(r) for r in records]

    def sync(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_checkpoints_chain_and_a_root_names_every_stream(key: SigningKey) -> None:
    sink, writer = ListSink(), AuditWriter(key=key, checkpoint_every=2)
    writer.append(events(5) + events(1, "tenant:t1"), sink)
    writer.seal(sink)
    system = [c for c in sink.checkpoints if c.stream == "system"]
    assert [c.seq for c in system] == [2, 4, 5]
    assert system[0].prev == GENESIS and [c.prev for c in system[1:]] == [c.digest for c in system[:-1]]
    keys = {key.key_id: key.verify_key}
    reports = {
        s: verify_stream(s, rows, [c for c in sink.checkpoints if c.stream == s], keys)
        for s, rows in sink.entries.items()
    }
    assert all(r.ok for r in reports.values())
    (root,) = sink.roots
    assert root.seq == 1 and root.prev == GENESIS
    assert {s: h["seq"] for s, h in root.heads.items()} == {"system": 5, "tenant:t1": 1}
    assert verify_roots(sink.roots, reports, keys).ok
    # Deleting a checkpoint from the middle breaks the signed link of the next one.
    gone = [c for c in system if c.seq != 2]
    assert not verify_stream("system", sink.entries["system"], gone, keys).ok
    # Deleting a whole stream (entries and checkpoints) leaves the root naming it.
    del reports["tenant:t1"]
    bad = verify_roots(sink.roots, reports, keys)
    assert not bad.ok and "tenant:t1" in (bad.reason or "")
    # No root at all, with entries: nothing vouches for the list of streams.
    assert not verify_roots([], reports, keys).ok


def test_a_seal_after_the_first_looks_only_at_moved_streams(key: SigningKey) -> None:
    sink, writer = ListSink(), AuditWriter(key=key, checkpoint_every=100)
    writer.append(events(2) + events(1, "tenant:t1"), sink)
    writer.seal(sink)
    writer.append(events(1, "tenant:t1"), sink)
    sink.unsealed = None  # type: ignore[assignment]  # the scan is not used again
    assert [(c.stream, c.seq) for c in writer.seal(sink)] == [("tenant:t1", 2)]
    assert [r.seq for r in sink.roots] == [1, 2]
    assert sink.roots[1].prev == sink.roots[0].digest
    assert {s: h["seq"] for s, h in sink.roots[1].heads.items()} == {"system": 2, "tenant:t1": 2}
    assert writer.seal(sink) == [] and len(sink.roots) == 2  # nothing moved: no new root


def test_the_witness_hears_heads_after_each_commit_and_signatures_at_each_seal(key: SigningKey) -> None:
    witness = ListWitness()
    sink, writer = ListSink(), AuditWriter(key=key, witness=witness)
    writer.append(events(2), sink)
    assert witness.records == []  # nothing before the commit
    writer.committed()
    assert witness.records == [
        {"record": "head", "stream": "system", "seq": 2, "hash": sink.entries["system"][1].hash}
    ]
    with pytest.raises(RuntimeError), writer.atomic():
        writer.append(events(1), sink)
        del sink.entries["system"][2:]
        raise RuntimeError("rolled back")
    writer.committed()  # the rolled-back head is not told: the head it tells is the kept one
    assert witness.records[-1]["seq"] == 2
    writer.seal(sink)
    writer.committed()
    kinds = [r["record"] for r in witness.records]
    assert kinds[-2:] == ["checkpoint", "root"]
    assert Root.from_dict(witness.records[-1]).digest == sink.roots[-1].digest


def test_an_entry_after_the_final_root_of_a_clean_shutdown_is_reported(key: SigningKey) -> None:
    keys = {key.key_id: key.verify_key}
    sink, writer = ListSink(), AuditWriter(key=key)
    writer.append(events(3), sink)
    writer.seal(sink, final=True)  # what close does
    assert sink.roots[-1].final

    def check() -> bool:
        reports = {
            s: verify_stream(s, rows, [c for c in sink.checkpoints if c.stream == s], keys)
            for s, rows in sink.entries.items()
        }
        return verify_roots(sink.roots, reports, keys).ok

    assert check()
    AuditWriter(key=key).append(events(1), sink)  # appended behind the stopped server's back
    assert not check()
    del sink.entries["system"][-1]
    restarted = AuditWriter(key=key)
    restarted.seal(sink)  # a restarted server first opens a new (non-final) root
    assert not sink.roots[-1].final and len(sink.roots) == 2
    restarted.append(events(1), sink)
    assert check()  # its tail is merely unsigned until the next sealing

"""Verifying the audit log: from a store, or from an exported JSON Lines file.

A full check (`verify_store` with no stream filter) walks every stream found in storage, then the
chain of signed roots (which names the streams that must exist), then, if asked, the job and
decision rows against the digests their entries hold (`audit.binding`) and the witness
(`verify_witness`). Each part is one `StreamReport`; pseudo-streams are named in parentheses.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from gatehouse.audit.chain import GENESIS, Checkpoint, Entry, Root, StreamReport, verify_roots, verify_stream
from gatehouse.audit.reader import AuditReader
from gatehouse.crypto import VerifyKey

__all__ = ["EXPORT_FORMAT", "WITNESS", "export_lines", "verify_file", "verify_store", "verify_witness"]

WITNESS = "(witness)"

EXPORT_FORMAT = "gatehouse-audit/1"


async def verify_store(
    store: AuditReader,
    keys: Mapping[str, VerifyKey],
    streams: Iterable[str] | None = None,
    *,
    witness: Iterable[Mapping[str, Any]] | None = None,
) -> list[StreamReport]:
    """Every stream (or only `streams`); with no filter, the roots too and, given its records,
    the witness."""
    if streams is not None:
        return [
            verify_stream(name, await store.audit_entries(name), await store.audit_checkpoints(name), keys)
            for name in streams
        ]
    roots = await store.audit_roots()
    # Streams are listed from the roots as well as from storage: a stream deleted from storage
    # is still named by a signed root.
    names = sorted(set(await store.audit_streams()) | {s for r in roots for s in r.heads})
    reports = {
        name: verify_stream(name, await store.audit_entries(name), await store.audit_checkpoints(name), keys)
        for name in names
    }
    out = [*reports.values(), verify_roots(roots, reports, keys)]
    if witness is not None:
        out.append(verify_witness(witness, reports, roots))
    return out


def verify_witness(
    records: Iterable[Mapping[str, Any]], streams: Mapping[str, StreamReport], roots: Sequence[Root]
) -> StreamReport:
    """Everything the witness saw must still be there, unchanged; nothing may follow the last
    head it saw of a stream. (A crash between a commit and its witness write, microseconds
    apart, can leave one commit's entries past the witness: reported, as a cut would be.)"""
    report = StreamReport(stream=WITNESS)
    last: dict[str, int] = {}
    by_seq = {r.seq: r for r in roots}
    for rec in records:
        report.entries += 1
        kind = rec.get("record")
        if kind == "head":
            stream, seq = str(rec.get("stream")), int(rec.get("seq", 0))
            got = streams.get(stream)
            if got is None or got.hashes.get(seq) is None:
                report.fail(seq, f"entry {seq} of `{stream}` seen by the witness is gone")
            elif got.hashes[seq] != rec.get("hash"):
                report.fail(seq, f"entry {seq} of `{stream}` differs from what the witness saw")
            last[stream] = max(last.get(stream, 0), seq)
        elif kind == "checkpoint":
            cp = Checkpoint(**{k: v for k, v in rec.items() if k != "record"})
            got = streams.get(cp.stream)
            if got is None or cp.digest not in got.digests:
                report.fail(cp.seq, f"checkpoint at {cp.seq} of `{cp.stream}` seen by the witness is gone")
        elif kind == "root":
            root = Root.from_dict(rec)
            stored = by_seq.get(root.seq)
            if stored is None:
                report.fail(root.seq, f"root {root.seq} seen by the witness is gone")
            elif stored.digest != root.digest:
                report.fail(root.seq, f"root {root.seq} differs from what the witness saw (re-signed)")
            for stream, head in root.heads.items():
                last[stream] = max(last.get(stream, 0), int(head.get("seq", 0)))
    for name, got in streams.items():
        if got.last_seq > last.get(name, 0):
            report.fail(
                last.get(name, 0) + 1,
                f"entries {last.get(name, 0) + 1}..{got.last_seq} of `{name}` were never seen by the witness",
            )
    report.last_seq = report.entries
    report.head_hash = GENESIS
    return report


def export_lines(
    entries: Iterable[Entry],
    checkpoints: Iterable[Checkpoint],
    keys: Iterable[VerifyKey],
    *,
    exported_at: float,
    since: str | None,
    roots: Iterable[Root] = (),
) -> Iterable[str]:
    """`roots`: only for a whole export (every stream from its first entry)."""
    header = {
        "record": "header",
        "format": EXPORT_FORMAT,
        "exported_at": exported_at,
        "since": since,
        "keys": [{"key_id": k.key_id, "pem": k.pem().decode()} for k in keys],
    }
    yield json.dumps(header, sort_keys=True)
    for e in entries:
        yield json.dumps({"record": "entry", **e.to_dict()}, sort_keys=True, ensure_ascii=False)
    for cp in checkpoints:
        yield json.dumps({"record": "checkpoint", **cp.to_dict()}, sort_keys=True)
    for root in roots:
        yield json.dumps({"record": "root", **root.to_dict()}, sort_keys=True)


def verify_file(path: Path, pinned: Mapping[str, VerifyKey] | None = None) -> list[StreamReport]:
    """Verify an export. Keys come from `pinned` if given (recommended), else from the header."""
    entries: dict[str, list[Entry]] = {}
    checkpoints: dict[str, list[Checkpoint]] = {}
    roots: list[Root] = []
    keys: dict[str, VerifyKey] = dict(pinned or {})
    partial = False
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            item: dict[str, Any] = json.loads(line)
        except ValueError:
            raise ValueError(f"line {n} is not JSON") from None
        kind = item.pop("record", None)
        if kind == "header":
            if item.get("format") != EXPORT_FORMAT:
                raise ValueError(f"line {n}: unknown export format `{item.get('format')}`")
            partial = item.get("since") is not None
            if pinned is None:
                for k in item.get("keys", []):
                    vk = VerifyKey.from_pem(k["pem"].encode())
                    keys[vk.key_id] = vk
        elif kind == "entry":
            e = Entry.from_dict(item)
            entries.setdefault(e.stream, []).append(e)
        elif kind == "checkpoint":
            cp = Checkpoint(**item)
            checkpoints.setdefault(cp.stream, []).append(cp)
        elif kind == "root":
            roots.append(Root.from_dict(item))
        else:
            raise ValueError(f"line {n}: unknown record type `{kind}`")
    names = sorted(set(entries) | set(checkpoints) | {s for r in roots for s in r.heads})
    reports = {
        name: verify_stream(name, entries.get(name, []), checkpoints.get(name, []), keys, partial=partial)
        for name in names
    }
    out = list(reports.values())
    if roots:
        out.append(verify_roots(roots, reports, keys))
    return out

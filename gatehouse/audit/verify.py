"""Verifying the audit log: from a store, or from an exported JSON Lines file."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from gatehouse.audit.chain import Checkpoint, Entry, StreamReport, verify_stream
from gatehouse.audit.reader import AuditReader
from gatehouse.crypto import VerifyKey

__all__ = ["EXPORT_FORMAT", "export_lines", "verify_file", "verify_store"]

EXPORT_FORMAT = "gatehouse-audit/1"


async def verify_store(
    store: AuditReader, keys: Mapping[str, VerifyKey], streams: Iterable[str] | None = None
) -> list[StreamReport]:
    names = list(streams) if streams is not None else await store.audit_streams()
    return [
        verify_stream(name, await store.audit_entries(name), await store.audit_checkpoints(name), keys)
        for name in names
    ]


def export_lines(
    entries: Iterable[Entry],
    checkpoints: Iterable[Checkpoint],
    keys: Iterable[VerifyKey],
    *,
    exported_at: float,
    since: str | None,
) -> Iterable[str]:
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


def verify_file(path: Path, pinned: Mapping[str, VerifyKey] | None = None) -> list[StreamReport]:
    """Verify an export. Keys come from `pinned` if given (recommended), else from the header."""
    entries: dict[str, list[Entry]] = {}
    checkpoints: dict[str, list[Checkpoint]] = {}
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
        else:
            raise ValueError(f"line {n}: unknown record type `{kind}`")
    return [
        verify_stream(name, entries.get(name, []), checkpoints.get(name, []), keys, partial=partial)
        for name in sorted(set(entries) | set(checkpoints))
    ]

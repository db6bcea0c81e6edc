"""The hash chain and its signed checkpoints: building entries and verifying a stream.

Each stream (`system`, `tenant:<name>`) is a sequence of entries numbered from 1. An entry's
`hash` is sha256 over the canonical JSON of all its other fields, `prev_hash` included, so
editing, deleting, reordering or inserting an entry breaks every later link. Every N entries,
and at shutdown, the head of the stream is signed (Ed25519 over `{stream, seq, hash, time}`):
a truncated tail shows as a checkpoint pointing past the end, and a re-hashed (forged) chain
fails the checkpoint signatures, since the forger does not hold the server's key.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gatehouse.crypto import SigningKey, VerifyKey, canonical
from gatehouse.ingress.prefilter import Prefilter, fold
from gatehouse.ingress.secrets import SECRET_SHAPES

__all__ = [
    "GENESIS",
    "Checkpoint",
    "Entry",
    "StreamReport",
    "checkpoint_payload",
    "entry_hash",
    "redact_preview",
    "sign_checkpoint",
    "verify_stream",
]

GENESIS = "0" * 64
_ENTRY_FIELDS = ("stream", "seq", "ts", "type", "actor", "request_id", "data", "prev_hash")


@dataclass(frozen=True, slots=True)
class Entry:
    stream: str
    seq: int
    ts: float
    type: str
    actor: str | None
    request_id: str | None
    data: Mapping[str, Any]
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in (*_ENTRY_FIELDS, "hash")}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Entry:
        return cls(**{f: d.get(f) for f in (*_ENTRY_FIELDS, "hash")})  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Checkpoint:
    stream: str
    seq: int
    hash: str
    time: float
    key_id: str
    sig: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "seq": self.seq,
            "hash": self.hash,
            "time": self.time,
            "key_id": self.key_id,
            "sig": self.sig,
        }


def entry_hash(fields: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical({f: fields.get(f) for f in _ENTRY_FIELDS})).hexdigest()


def checkpoint_payload(stream: str, seq: int, hash_: str, time: float) -> bytes:
    return canonical({"stream": stream, "seq": seq, "hash": hash_, "time": time})


def sign_checkpoint(key: SigningKey, stream: str, seq: int, hash_: str, time: float) -> Checkpoint:
    sig = key.sign(checkpoint_payload(stream, seq, hash_, time))
    return Checkpoint(stream=stream, seq=seq, hash=hash_, time=time, key_id=key.key_id, sig=sig)


@dataclass
class StreamReport:
    stream: str
    entries: int = 0
    checkpoints: int = 0
    ok: bool = True
    first_bad_seq: int | None = None
    reason: str | None = None
    head_hash: str = GENESIS
    problems: list[str] = field(default_factory=list)

    def fail(self, seq: int | None, reason: str) -> None:
        if self.ok:
            self.ok = False
            self.first_bad_seq = seq
            self.reason = reason
        self.problems.append(reason)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "entries": self.entries,
            "checkpoints": self.checkpoints,
            "ok": self.ok,
            "first_bad_seq": self.first_bad_seq,
            "reason": self.reason,
            "head_hash": self.head_hash,
        }


def verify_stream(
    stream: str,
    entries: Iterable[Entry],
    checkpoints: Iterable[Checkpoint],
    keys: Mapping[str, VerifyKey],
    *,
    partial: bool = False,
) -> StreamReport:
    """Walk one stream in storage order; report the first entry that breaks it.

    `partial`: the entries are an export that starts mid-stream (`--since`); the first entry's
    `prev_hash` is taken as the anchor, and checkpoints before it are not checked.
    """
    report = StreamReport(stream=stream)
    hashes: dict[int, str] = {}
    prev = GENESIS
    expected = 1
    entries = list(entries)
    first_seq = 1
    if partial and entries and entries[0].seq > 1:
        first_seq = expected = entries[0].seq
        prev = entries[0].prev_hash
    for e in entries:
        report.entries += 1
        if e.seq != expected:
            report.fail(expected, f"entry {expected} is missing or out of order (found {e.seq} next)")
        if e.prev_hash != prev:
            report.fail(e.seq, f"entry {e.seq} does not link to the entry before it")
        if entry_hash(e.to_dict()) != e.hash:
            report.fail(e.seq, f"entry {e.seq} was modified (its hash does not match its content)")
        hashes[e.seq] = e.hash
        prev = e.hash
        expected = e.seq + 1
    report.head_hash = prev
    last_seq = expected - 1
    for cp in checkpoints:
        if cp.seq < first_seq:
            continue
        report.checkpoints += 1
        key = keys.get(cp.key_id)
        if key is None:
            report.fail(cp.seq, f"checkpoint at {cp.seq} is signed by unknown key `{cp.key_id}`")
            continue
        if not key.verify(checkpoint_payload(cp.stream, cp.seq, cp.hash, cp.time), cp.sig):
            report.fail(cp.seq, f"checkpoint at {cp.seq} has a bad signature")
            continue
        if cp.seq > last_seq:
            report.fail(last_seq + 1, f"entries {last_seq + 1}..{cp.seq} were removed (truncated tail)")
        elif hashes.get(cp.seq) != cp.hash:
            report.fail(cp.seq, f"entry {cp.seq} differs from the signed checkpoint")
    return report


# The shared table's shapes (`gatehouse.ingress.secrets`, the ones ingress and the output gate
# use), then what only a preview masks: any long token-like run, which a random key of unknown
# shape usually is. Masking too much costs a reader a few characters; too little leaks a key.
_TABLE_SHAPES = "|".join(s.regex for s in SECRET_SHAPES)
_LONG_TOKEN = r"[A-Za-z0-9+/_=-]{32,}|"
_SECRET_ASSIGNMENT = r"(?i:password|passwd|secret|token|api[_-]?key)\s*[=:]\s*\S+|"
_CONTACT_SHAPES = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}|\b(?:\d[ -]?){13,19}\b"


def _secretish(*, shapes: bool, keywords: bool) -> re.Pattern[str]:
    table = f"{_TABLE_SHAPES}|" if shapes else ""
    return re.compile(f"({table}{_LONG_TOKEN}{_SECRET_ASSIGNMENT if keywords else ''}{_CONTACT_SHAPES})")


_SECRETISH = _secretish(shapes=True, keywords=True)
# The same alternation without branches that cannot match the text, the slowest to try at every
# position: the case-blind keyword branch when none of its keywords occurs, the table's shapes
# when the text lacks every literal they need (the ingress prefilter, which is sound: it only
# ever under-states what a match needs). A branch that cannot match changes no result.
_VARIANTS = {(s, k): _secretish(shapes=s, keywords=k) for s in (True, False) for k in (True, False)}
_KEYWORDS = ("pass", "secret", "token", "api")
_SHAPES_PREFILTER = Prefilter.of(_TABLE_SHAPES)


def redact_preview(text: str, limit: int = 64) -> str:
    """A short preview of untrusted text with anything secret-shaped masked."""
    head = text[: limit * 4]
    folded = fold(head)  # lower case, and the non-ASCII letters IGNORECASE equates with ASCII
    shapes = _SHAPES_PREFILTER is None or _SHAPES_PREFILTER.passes(head, folded)
    pattern = _VARIANTS[shapes, any(k in folded for k in _KEYWORDS)]
    masked = pattern.sub("[redacted]", head)
    return masked[:limit] + ("…" if len(masked) > limit or len(text) > limit * 4 else "")

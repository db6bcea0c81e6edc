"""The hash chain and its signed checkpoints: building entries and verifying a stream.

Each stream (`system`, `tenant:<name>`) is a sequence of entries numbered from 1. An entry's
`hash` is sha256 over the canonical JSON of all its other fields, `prev_hash` included, so
editing, deleting, reordering or inserting an entry breaks every later link. Every N entries,
every few seconds and at shutdown, the head of the stream is signed (Ed25519 over `{stream, seq,
hash, time, prev}`): a truncated tail shows as a checkpoint pointing past the end, and a
re-hashed (forged) chain fails the checkpoint signatures, since the forger does not hold the key.

Checkpoints are chained too: `prev` is the digest of the stream's checkpoint before it, so
deleting or reordering checkpoints breaks a signed link. And each sealing signs one `Root` over
the last checkpoint of every stream, chained to the root before it: verification lists the
streams from the newest root, so deleting a whole stream, or all the checkpoints of one, leaves
a signed reference to what is gone. (Checkpoints written before chaining have `prev = None`;
they are accepted only before the first chained one.)

What no signature can show: a rollback to an earlier consistent state (the tail entries, the
checkpoints and roots after some point all deleted), a tail written after the last sealing, or
anything re-signed by someone who holds the key. The witness (`audit.witness`) covers those.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gatehouse.crypto import SigningKey, VerifyKey, canonical
from gatehouse.ingress.prefilter import Prefilter, fold
from gatehouse.ingress.secrets import SECRET_SHAPES

__all__ = [
    "GENESIS",
    "Checkpoint",
    "Entry",
    "Root",
    "StreamReport",
    "checkpoint_payload",
    "entry_hash",
    "redact_preview",
    "root_payload",
    "sign_checkpoint",
    "sign_root",
    "verify_roots",
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
    # The digest of the stream's checkpoint before this one (GENESIS for its first); None only
    # for checkpoints written before checkpoints were chained.
    prev: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "stream": self.stream,
            "seq": self.seq,
            "hash": self.hash,
            "time": self.time,
            "key_id": self.key_id,
            "sig": self.sig,
        }
        if self.prev is not None:
            out["prev"] = self.prev
        return out

    @property
    def payload(self) -> bytes:
        return checkpoint_payload(self.stream, self.seq, self.hash, self.time, self.prev)

    @property
    def digest(self) -> str:
        """What the next checkpoint of the stream, and a root, name this one by."""
        return hashlib.sha256(self.payload).hexdigest()


@dataclass(frozen=True, slots=True)
class Root:
    """One signature over the last checkpoint of every stream, chained to the root before it."""

    seq: int
    time: float
    prev: str
    heads: Mapping[str, Mapping[str, Any]]  # stream -> {seq, hash, checkpoint (its digest)}
    key_id: str
    sig: str
    # Signed at a clean shutdown: the writer stopped here, so nothing may follow until the
    # next (non-final) root of a restarted writer.
    final: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time,
            "prev": self.prev,
            "heads": {s: dict(h) for s, h in self.heads.items()},
            "key_id": self.key_id,
            "sig": self.sig,
            "final": self.final,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Root:
        return cls(
            seq=d["seq"],
            time=d["time"],
            prev=d["prev"],
            heads=d["heads"],
            key_id=d["key_id"],
            sig=d["sig"],
            final=bool(d.get("final", False)),
        )

    @property
    def payload(self) -> bytes:
        return root_payload(self.seq, self.time, self.prev, self.heads, final=self.final)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.payload).hexdigest()


def entry_hash(fields: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical({f: fields.get(f) for f in _ENTRY_FIELDS})).hexdigest()


def checkpoint_payload(stream: str, seq: int, hash_: str, time: float, prev: str | None = None) -> bytes:
    body: dict[str, Any] = {"stream": stream, "seq": seq, "hash": hash_, "time": time}
    if prev is not None:  # an unchained (older) checkpoint signed the body without it
        body["prev"] = prev
    return canonical(body)


def root_payload(
    seq: int, time: float, prev: str, heads: Mapping[str, Mapping[str, Any]], *, final: bool = False
) -> bytes:
    return canonical({"root": seq, "time": time, "prev": prev, "heads": heads, "final": final})


def sign_checkpoint(
    key: SigningKey, stream: str, seq: int, hash_: str, time: float, prev: str | None = GENESIS
) -> Checkpoint:
    sig = key.sign(checkpoint_payload(stream, seq, hash_, time, prev))
    return Checkpoint(stream=stream, seq=seq, hash=hash_, time=time, key_id=key.key_id, sig=sig, prev=prev)


def sign_root(
    key: SigningKey,
    seq: int,
    time: float,
    prev: str,
    heads: Mapping[str, Mapping[str, Any]],
    *,
    final: bool = False,
) -> Root:
    sig = key.sign(root_payload(seq, time, prev, heads, final=final))
    return Root(seq=seq, time=time, prev=prev, heads=heads, key_id=key.key_id, sig=sig, final=final)


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
    # Entries after the newest signature over the stream: nothing but a witness vouches for them.
    unsigned: int = 0
    # What roots and the witness check against: entry hashes by seq, checkpoint digests.
    hashes: dict[int, str] = field(default_factory=dict, repr=False)
    digests: set[str] = field(default_factory=set, repr=False)
    last_seq: int = 0

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
            "unsigned": self.unsigned,
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
    hashes = report.hashes
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
    last_seq = report.last_seq = expected - 1
    signed_to = 0
    link: str | None = None  # the digest the next chained checkpoint must name
    chained = False
    for cp in checkpoints:
        if cp.seq < first_seq:
            link = cp.digest
            continue
        report.checkpoints += 1
        key = keys.get(cp.key_id)
        if key is None:
            report.fail(cp.seq, f"checkpoint at {cp.seq} is signed by unknown key `{cp.key_id}`")
            continue
        if not key.verify(cp.payload, cp.sig):
            report.fail(cp.seq, f"checkpoint at {cp.seq} has a bad signature")
            continue
        if cp.prev is None:
            if chained:
                report.fail(cp.seq, f"checkpoint at {cp.seq} is not chained to the one before it")
        elif cp.prev != (link or GENESIS) and not (partial and link is None and first_seq > 1):
            report.fail(
                cp.seq, f"checkpoint at {cp.seq} does not link to the one before it (checkpoints removed)"
            )
        chained = chained or cp.prev is not None
        link = cp.digest
        report.digests.add(cp.digest)
        if cp.seq > last_seq:
            report.fail(last_seq + 1, f"entries {last_seq + 1}..{cp.seq} were removed (truncated tail)")
        elif hashes.get(cp.seq) != cp.hash:
            report.fail(cp.seq, f"entry {cp.seq} differs from the signed checkpoint")
        signed_to = max(signed_to, cp.seq)
    report.unsigned = max(0, last_seq - signed_to)
    return report


ROOTS = "(roots)"


def verify_roots(
    roots: Sequence[Root], streams: Mapping[str, StreamReport], keys: Mapping[str, VerifyKey]
) -> StreamReport:
    """Check the chain of roots, and that every stream the newest root names is still there, up
    to the checkpoint it names. `streams`: the reports of every stream found in storage."""
    report = StreamReport(stream=ROOTS)
    prev = GENESIS
    for n, root in enumerate(roots, 1):
        report.entries += 1
        key = keys.get(root.key_id)
        if key is None:
            report.fail(root.seq, f"root {root.seq} is signed by unknown key `{root.key_id}`")
        elif not key.verify(root.payload, root.sig):
            report.fail(root.seq, f"root {root.seq} has a bad signature")
        if root.seq != n:
            report.fail(n, f"root {n} is missing or out of order (found {root.seq} next)")
        if root.prev != prev:
            report.fail(root.seq, f"root {root.seq} does not link to the root before it (roots removed)")
        prev = root.digest
        for stream, head in root.heads.items():
            got = streams.get(stream)
            if got is None or got.entries == 0:
                report.fail(root.seq, f"stream `{stream}` named by root {root.seq} has no entries (deleted)")
                continue
            if head.get("checkpoint") not in got.digests:
                report.fail(
                    root.seq,
                    f"checkpoint at {head.get('seq')} of `{stream}` named by root {root.seq} is missing",
                )
            if got.hashes.get(int(head.get("seq", 0))) != head.get("hash"):
                report.fail(root.seq, f"entry {head.get('seq')} of `{stream}` differs from root {root.seq}")
    report.head_hash = prev
    report.last_seq = len(roots)
    newest = roots[-1] if roots else None
    if newest is None and any(r.entries for r in streams.values()):
        report.fail(None, "no signed root: nothing vouches for the list of streams (roots removed?)")
    if newest is not None:
        for name, got in streams.items():
            named = newest.heads.get(name)
            # A stream born after the newest root is unsigned from its first entry.
            got.unsigned = max(0, got.last_seq - int(named["seq"])) if named else got.last_seq
            if newest.final and got.unsigned:
                report.fail(
                    newest.seq,
                    f"{got.unsigned} entries of `{name}` follow root {newest.seq}, signed at a clean "
                    "shutdown (appended behind the server's back)",
                )
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

"""The output decision: scan a worker's whole result with the bundle's detectors, then allow,
redact or quarantine it.

Theory of operation. A result is any JSON value and, for a failed job, an error text. `scan`
walks the value depth-first in a fixed order (dict insertion order: each key, then its value;
list order) and reads every *leaf* a reader could be shown: string values, object keys, and
numbers rendered as text (a card number sent as a JSON integer is still a card number); the
error is one more leaf, at path `error`. Each leaf is read as the detectors should see it
(`gatehouse.output.normalise`): folded (NFKC, invisible characters removed), with the base64
and hex runs in it decoded and read too (to a bounded depth and size). A value under a
secret-ish key is also read as `key=value` (`{"pw": "hunter2"}`). Strings that are siblings in a
list are then read joined, so that a secret split across elements (a PEM block, a key cut in
two) is found and each element's part of it reported. At most `max_chars` characters of leaves
are read; past that the result is marked incomplete and the caller fails closed.

A finding is reported with the JSON path of its leaf and the offsets inside it; a key that
holds a finding is written masked in every path (a path must not carry the secret), and the
excerpt shows at most a public prefix (`AKIA…`), never a character of a password.

`decide` applies the output rules of the bundle the way `Policy.decide` applies rules: only
rules whose topics match the job apply, a rule matches when one of its detectors found
something, the most restrictive decision wins (`quarantine` > `redact` > `allow`) and ties go to
the rule listed first; with no match the output is allowed under rule id `default`.

Redaction replaces each finding of a matching `redact` or `quarantine` rule, whole, by
`[REDACTED:<detector>]` (overlapping findings are merged first, so no fragment survives between
them; a number becomes the marker string, a key the marker). The redacted copy is then scanned
again, joins and decodings included, until nothing is found: joining text around a marker must
never assemble a new secret. The input is never mutated.

Nothing here does I/O or reads a clock: the same output and rules give the same verdict.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from gatehouse.output.detectors import (
    ALL_DETECTORS,
    KEYED_DETECTORS,
    MARKER_PREFIX,
    Detector,
    get_detector,
    keyed_password,
    public_prefix,
)
from gatehouse.output.normalise import blobs, fold
from gatehouse.policy import EvaluationError, OutputRule, compile_glob, compile_target

__all__ = ["DEFAULT_MAX_CHARS", "Finding", "OutputVerdict", "applies", "decide", "scan"]

DEFAULT_MAX_CHARS = 1_048_576

# Lower is more restrictive, as `gatehouse.policy.severity` ranks submit decisions.
_SEVERITY = {"quarantine": 0, "redact": 1, "allow": 2}
# Deeper than any JSON a parser accepts (orjson stops at 1024); a cycle in a Python-built value
# would otherwise walk forever.
_MAX_DEPTH = 10_000
# Full re-scans of the redacted copy before every leaf still holding a finding is replaced whole.
_MAX_PASSES = 4
# Encoded runs are opened this many levels deep (base64 of base64), and at most this many
# decoded characters per result: a blob bomb costs a bounded amount of work.
_DECODE_DEPTH = 2
_DECODE_CHARS = 262_144
# How much of a value under a key is read as `key=value` (a keyed secret is at most 512 long).
_KEYED_HEAD = 1024
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Ties between findings at the same offsets go to the detector listed first in the table.
_ORDER = {d.name: i for i, d in enumerate(ALL_DETECTORS)}
# Keys that could be names: a word of at most 64 characters.
_KEY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")
# Sibling strings are read joined with each separator: a space (lines of a PEM block, words of a
# sentence) and nothing (a token cut in two).
_JOINS = (" ", "")

Span = tuple[int, int, str]  # start, end, detector


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing one detector found. `excerpt` is masked: it never holds the secret itself."""

    detector: str
    path: str  # JSON path of the leaf: "$", "$.stdout", "$.items[2].text", "error"
    start: int  # offsets within that leaf's text
    end: int
    excerpt: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "detector": self.detector,
            "path": self.path,
            "start": self.start,
            "end": self.end,
            "excerpt": self.excerpt,
        }


@dataclass(frozen=True, slots=True)
class OutputVerdict:
    decision: str  # allow | redact | quarantine
    rule_id: str  # the winning output rule, or "default" when none matched
    reason: str
    findings: tuple[Finding, ...]
    redacted: Any  # the output to store or preview; the input itself when allowed
    complete: bool  # False when only the first `max_chars` characters were scanned
    redacted_error: str | None = None  # the error the same way

    def to_dict(self) -> dict[str, Any]:
        """The verdict for decision records and the audit log.

        The output itself (`redacted`) is left out on purpose: records must never carry output
        content, and under an `allow` verdict the output may hold what an allow rule tolerated.
        """
        return {
            "decision": self.decision,
            "rule_id": self.rule_id,
            "reason": self.reason,
            "findings": [f.to_dict() for f in self.findings],
            "complete": self.complete,
        }


def scan(
    output: Any,
    detectors: Iterable[str],
    *,
    max_chars: int = DEFAULT_MAX_CHARS,
    error: str | None = None,
) -> tuple[tuple[Finding, ...], bool]:
    """Every finding of the named detectors in `output` (and `error`), and whether all was scanned.

    Findings come in walk order, then by offset. Raises `EvaluationError` for an unknown
    detector name or a value that is not JSON.
    """
    leaves = _leaves(output, error)
    hits, complete = _scan(leaves, _detectors(detectors), max_chars)
    return _findings(leaves, hits), complete


def decide(
    output: Any,
    rules: Sequence[OutputRule],
    *,
    topic: str | None,
    target: str | None = None,
    max_chars: int = DEFAULT_MAX_CHARS,
    error: str | None = None,
) -> OutputVerdict:
    """The output decision for a job on `topic`, or a tool call on `target` (module docstring:
    which rule wins and why; `applies`: which rules judge it)."""
    applicable = [r for r in rules if applies(r, topic, target)]
    for rule in applicable:
        if rule.decision not in _SEVERITY:
            raise EvaluationError(
                f"output rule `{rule.id}` has decision `{rule.decision}`, not allow, redact or quarantine",
                code="bad_output_rule",
            )
    names = list(dict.fromkeys(d for r in applicable for d in r.detectors))
    leaves = _leaves(output, error)
    hits, complete = _scan(leaves, _detectors(names), max_chars)
    findings = _findings(leaves, hits)
    found = {f.detector for f in findings}
    matching = [r for r in applicable if found.intersection(r.detectors)]
    if not matching:
        return OutputVerdict("allow", "default", "no output rule matched", findings, output, complete, error)
    # min() keeps the first of equals, so ties go to the rule listed first.
    winner = min(matching, key=lambda r: _SEVERITY[r.decision])
    redacted, redacted_error = output, error
    if winner.decision != "allow":
        # Redact for every matching rule that hides something: under `quarantine` too, so the
        # reviewer's preview shows neither the key that caused it nor the PII beside it.
        hidden = {d for r in matching if r.decision != "allow" for d in r.detectors}
        recheck = _detectors(d for r in applicable if r.decision != "allow" for d in r.detectors)
        kept = {i: [s for s in spans if s[2] in hidden] for i, spans in hits.items()}
        redacted, redacted_error = _redact(output, error, leaves, kept, recheck, max_chars)
    reason = _reason(winner, found)
    return OutputVerdict(winner.decision, winner.id, reason, findings, redacted, complete, redacted_error)


# --- the leaves of a result ----------------------------------------------------------------------


class _Leaf(NamedTuple):
    """A text a reader could be shown: a string value, an object key, a number, the error.

    (A named tuple: a result has as many leaves as values, and tuples are the cheapest to make.)
    """

    kind: str  # "str" | "key" | "num" | "error"
    text: str
    parts: Any  # path, linked: None at the root, else (parent's parts, list index or `_KeyRef`)
    key: str | None  # the object key a value sits under, when it could be a name
    group: int  # the list a string sits in directly (its index among lists), else -1
    unreadable: bool = False  # a number too long to render: the scan is incomplete


@dataclass(slots=True)
class _KeyRef:
    """An object key in a path: its text and its leaf, so a flagged key is written masked."""

    key: str
    leaf: int = -1


def _leaves(output: Any, error: str | None) -> list[_Leaf]:
    """The leaves of `output` in walk order (module docstring), then the error."""
    leaves: list[_Leaf] = []
    lists = 0
    # (node, path, depth, key it sits under, list group); a `_KeyRef` entry emits a key leaf.
    stack: list[tuple[Any, Any, int, str | None, int]] = [(output, None, 0, None, -1)]
    while stack:
        node, parts, depth, key, group = stack.pop()
        if isinstance(node, _KeyRef):
            node.leaf = len(leaves)
            leaves.append(_Leaf("key", node.key, parts, None, -1))
        elif isinstance(node, str):
            leaves.append(_Leaf("str", node, parts, key, group))
        elif isinstance(node, (dict, list, tuple)):
            if depth >= _MAX_DEPTH:
                raise EvaluationError("output is nested too deeply to scan", code="output_too_deep")
            pushed: list[tuple[Any, Any, int, str | None, int]] = []
            if isinstance(node, dict):
                for k, child in node.items():
                    if isinstance(k, str):
                        ref = _KeyRef(k)
                        pushed.append((ref, (parts, ref), depth, None, -1))
                        name = k if _KEY_NAME.fullmatch(k) else None
                        pushed.append((child, (parts, ref), depth + 1, name, -1))
                    else:
                        pushed.append((child, (parts, _KeyRef(str(k))), depth + 1, None, -1))
            else:
                lists += 1
                pushed = [(child, (parts, i), depth + 1, None, lists) for i, child in enumerate(node)]
            # Reversed onto the stack so that they come off in document order.
            stack.extend(reversed(pushed))
        elif isinstance(node, (int, float)) and not isinstance(node, bool):
            text = _number_text(node)
            leaves.append(_Leaf("num", text or "", parts, key, -1, unreadable=text is None))
        elif node is not None and not isinstance(node, bool):
            raise EvaluationError(
                f"output holds a `{type(node).__name__}`, not a JSON value", code="output_not_json"
            )
    if error is not None:
        leaves.append(_Leaf("error", error, None, None, -1))
    return leaves


def _number_text(n: int | float) -> str | None:
    """A number as a reader sees it: `4111111111111111`, also when sent as `4111111111111111.0`."""
    if isinstance(n, float):
        if math.isfinite(n) and n.is_integer() and abs(n) < 1e21:
            return str(int(n))
        return repr(n)
    try:
        return str(n)
    except ValueError:  # more digits than Python renders by default
        return None


# --- scanning ------------------------------------------------------------------------------------


def _detectors(names: Iterable[str]) -> tuple[Detector, ...]:
    out: list[Detector] = []
    for name in dict.fromkeys(names):
        try:
            out.append(get_detector(name))
        except KeyError as exc:
            raise EvaluationError(str(exc.args[0]), code="unknown_detector") from None
    return tuple(out)


@dataclass(slots=True)
class _Budget:
    decoded: int = _DECODE_CHARS


def _scan(
    leaves: Sequence[_Leaf],
    detectors: Sequence[Detector],
    max_chars: int,
    only: set[int] | None = None,
) -> tuple[dict[int, list[Span]], bool]:
    """The findings of each leaf (by leaf index, offsets in the leaf's text), and whether every
    leaf was read whole. With `only`, just those leaves are read (and the lists holding them)."""
    if max_chars < 0:
        raise ValueError("max_chars must not be negative")
    hits: dict[int, list[Span]] = {}
    complete = not any(leaf.unreadable for leaf in leaves)
    budget = max_chars
    decoded = _Budget()
    scanned: dict[int, str] = {}
    for index, leaf in enumerate(leaves):
        text = leaf.text
        cut = len(text) > budget
        if cut:
            text = text[:budget]
            complete = False
        budget -= len(text)
        scanned[index] = text
        if detectors and (only is None or index in only) and _worth_reading(leaf, text):
            found = _find(text, detectors, leaf.key, decoded, 0)
            if found:
                hits[index] = found
        if cut:
            break
    if detectors:
        for index, spans in _joined(leaves, scanned, detectors, decoded, only, hits):
            hits[index] = _unique([*hits.get(index, []), *spans])
    return hits, complete


# Nothing a detector finds is shorter than this (`1.2.3.4`, `a@b.io`) but a value read under its
# key (`{"pw": "abc"}`); and no number under six digits is a secret. Most keys and numbers of a
# result are that short: skipping them keeps the whole-result scan close to the strings-only one.
_SHORTEST = 7


def _worth_reading(leaf: _Leaf, text: str) -> bool:
    if leaf.kind == "num":
        return len(text) >= 6
    return len(text) >= _SHORTEST or (leaf.key is not None and len(text) >= 3)


def _find(
    text: str, detectors: Sequence[Detector], key: str | None, budget: _Budget, depth: int
) -> list[Span]:
    """The spans the detectors find in `text`, read folded, under its key and decoded."""
    if not text:
        return []
    view = fold(text)
    t = view.text
    found: list[Span] = [(s, e, d.name) for d in detectors for s, e in d.spans(t)]
    if key is not None:
        # `{"password": "hunter2"}`: the value alone names nothing; read it as `key=value`
        # for the detectors that look for a secret after its name, and keep what falls in the
        # value. A password-ish key makes its whole value the secret.
        # Only the head of the value can follow the name: no keyed secret is longer.
        offset = len(key) + 1
        keyed = f"{key}={t[:_KEYED_HEAD]}"
        lowered = key.lower()
        for d in detectors:
            if d.name == "password" and keyed_password(key, t):
                found.append((0, len(t), "password"))
            hints = KEYED_DETECTORS.get(d.name)
            if hints is not None and any(h in lowered for h in hints):
                found += [(s - offset, e - offset, d.name) for s, e in d.spans(keyed) if s >= offset]
    if depth < _DECODE_DEPTH and budget.decoded > 0:
        for blob in blobs(t, budget.decoded):
            budget.decoded -= len(blob.decoded)
            inner = _find(blob.decoded, detectors, None, budget, depth + 1)
            found += [(blob.start, blob.end, name) for name in dict.fromkeys(n for _, _, n in inner)]
    if view.marks is not None:
        found = [(*view.source_span(s, e), name) for s, e, name in found]
    return _unique(found)


def _unique(found: list[Span]) -> list[Span]:
    return sorted(set(found), key=lambda h: (h[0], h[1], _ORDER[h[2]]))


def _joined(
    leaves: Sequence[_Leaf],
    scanned: dict[int, str],
    detectors: Sequence[Detector],
    budget: _Budget,
    only: set[int] | None,
    hits: dict[int, list[Span]],
) -> list[tuple[int, list[Span]]]:
    """Findings that cross sibling strings of a list, read joined, as spans of each sibling.

    Read glued together (no separator), a neighbour's last letters would lengthen what an
    element holds on its own (`["t", "jane@example.com"]` reads `tjane@...`): glued, only what
    none of the elements it touches holds alone counts (`["AKIAQ7XK2M", "4N6P8R0T2V"]`)."""
    groups: dict[int, list[int]] = {}
    for index, leaf in enumerate(leaves):
        if leaf.group >= 0 and leaf.kind == "str" and index in scanned and scanned[index]:
            groups.setdefault(leaf.group, []).append(index)
    out: list[tuple[int, list[Span]]] = []
    for members in groups.values():
        if len(members) < 2 or (only is not None and only.isdisjoint(members)):
            continue
        for sep in _JOINS:
            if not sep and not _glued(scanned[a] for a in members):
                continue
            starts: list[int] = []
            pos = 0
            for index in members:
                starts.append(pos)
                pos += len(scanned[index]) + len(sep)
            joined = sep.join(scanned[i] for i in members)
            for s, e, name in _find(joined, detectors, None, budget, 0):
                touched = [
                    (index, max(s, start) - start, min(e, start + len(scanned[index])) - start)
                    for index, start in zip(members, starts, strict=True)
                    if start < e and s < start + len(scanned[index])
                ]
                if len(touched) < 2:  # within one element: already found there
                    continue
                if not sep and any(h[2] == name for index, _, _ in touched for h in hits.get(index, ())):
                    continue
                out += [(index, [(a, b, name)]) for index, a, b in touched if b > a]
    return out


def _glued(texts: Iterable[str]) -> bool:
    """Whether two neighbours meet letter to letter (`AKIAQ7XK`, `2M4N...`): only then can
    reading them joined with nothing between find what reading them with a space did not."""
    last = ""
    for text in texts:
        if last.isalnum() and text[:1].isalnum():
            return True
        last = text[-1:]
    return False


def _findings(leaves: Sequence[_Leaf], hits: dict[int, list[Span]]) -> tuple[Finding, ...]:
    flagged = {i for i, leaf in enumerate(leaves) if leaf.kind == "key" and hits.get(i)}
    out: list[Finding] = []
    for index in sorted(hits):
        leaf = leaves[index]
        path = _path(leaf, leaves, hits, flagged)
        out += [Finding(name, path, s, e, _mask(leaf.text[s:e])) for s, e, name in hits[index]]
    return tuple(out)


def _path(leaf: _Leaf, leaves: Sequence[_Leaf], hits: dict[int, list[Span]], flagged: set[int]) -> str:
    if leaf.kind == "error":
        return "error"
    chain: list[Any] = []
    link = leaf.parts
    while link is not None:
        link, part = link
        chain.append(part)
    out = ["$"]
    for part in reversed(chain):
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif part.leaf in flagged:
            out.append(f"[{json.dumps(_replace(part.key, hits[part.leaf]))}]")
        elif _IDENTIFIER.fullmatch(part.key):
            out.append(f".{part.key}")
        else:
            out.append(f"[{json.dumps(part.key)}]")
    return "".join(out)


def _mask(secret: str) -> str:
    """`AKIA…[16 chars]`: a known public prefix at most (never more than a quarter), else nothing."""
    shown = public_prefix(secret)[: min(4, len(secret) // 4)]
    return f"{shown}…[{len(secret) - len(shown)} chars]"


# --- redaction -----------------------------------------------------------------------------------


def _redact(
    output: Any,
    error: str | None,
    leaves: list[_Leaf],
    hits: dict[int, list[Span]],
    recheck: Sequence[Detector],
    max_chars: int,
) -> tuple[Any, str | None]:
    """The output and error with the given findings replaced, re-scanned until clean."""
    final: dict[int, str] = {}
    for _ in range(_MAX_PASSES):
        replaced = {i: _replace(leaves[i].text, s) for i, s in hits.items() if s}
        final.update(replaced)
        # Replacing keeps the shape of the value, so leaf n stays leaf n; and only what changed
        # can hold a new finding: the replaced leaves and the lists around them.
        leaves = [leaf._replace(text=replaced[i]) if i in replaced else leaf for i, leaf in enumerate(leaves)]
        hits, _complete = _scan(leaves, recheck, max_chars, only=set(replaced))
        if not hits:
            return _rebuild(output, error, final)
    # Markers keep assembling new findings (never seen in practice): hide every such leaf whole.
    final.update({i: _marker(s[0][2]) for i, s in hits.items() if s})
    return _rebuild(output, error, final)


def _replace(text: str, spans: list[Span]) -> str:
    """Replace the union of `spans`; a merged run is named after its first (then longest) finding."""
    ordered = sorted(spans, key=lambda s: (s[0], -s[1], _ORDER[s[2]]))
    out: list[str] = []
    pos = 0
    run_start, run_end, run_name = ordered[0]
    for start, end, name in ordered[1:]:
        if start < run_end:  # overlapping: extend the run
            run_end = max(run_end, end)
            continue
        out += [text[pos:run_start], _marker(run_name)]
        pos = run_end
        run_start, run_end, run_name = start, end, name
    out += [text[pos:run_start], _marker(run_name), text[run_end:]]
    return "".join(out)


def _marker(detector: str) -> str:
    return f"{MARKER_PREFIX}{detector}]"


def _rebuild(value: Any, error: str | None, replaced: dict[int, str]) -> tuple[Any, str | None]:
    """A deep copy of `value` in which leaf n (the walk order of `_leaves`) is `replaced[n]` if
    given, and `error` likewise (the leaf after the value's).

    Containers are always copied, so the caller may change the result without touching the
    input. A replaced key that would collide with a sibling gets a ` #n` suffix.
    """
    holder: list[Any] = [None]
    index = 0
    # (parent, slot, node, depth); a dict value's slot is a one-element list its key fills in.
    stack: list[tuple[Any, Any, Any, int]] = [(holder, 0, value, 0)]
    while stack:
        parent, slot, node, depth = stack.pop()
        if isinstance(node, _KeyRef):
            # A key leaf: `parent` is the new dict, `slot` the cell its value's entry reads.
            new = replaced.get(index, node.key)
            index += 1
            if new in parent:
                n = 2
                while f"{new} #{n}" in parent:
                    n += 1
                new = f"{new} #{n}"
            parent[new] = None
            slot[0] = new
            continue
        if isinstance(slot, list):
            slot = slot[0]
        if isinstance(node, str):
            parent[slot] = replaced.get(index, node)
            index += 1
        elif isinstance(node, (dict, list, tuple)):
            # The scan may have stopped at its budget before reaching a cycle: guard here too.
            if depth >= _MAX_DEPTH:
                raise EvaluationError("output is nested too deeply to scan", code="output_too_deep")
            entries: list[tuple[Any, Any, Any, int]] = []
            if isinstance(node, dict):
                copy: dict[Any, Any] | list[Any] = {}
                for k, child in node.items():
                    if isinstance(k, str):
                        cell = [k]
                        entries.append((copy, cell, _KeyRef(k), depth))
                        entries.append((copy, cell, child, depth + 1))
                    else:
                        copy[k] = None
                        entries.append((copy, k, child, depth + 1))
            else:
                copy = [None] * len(node)
                entries = [(copy, i, child, depth + 1) for i, child in enumerate(node)]
            parent[slot] = copy
            stack.extend(reversed(entries))
        else:
            if isinstance(node, (int, float)) and not isinstance(node, bool):
                node = replaced.get(index, node)
                index += 1
            parent[slot] = node
    if error is not None:
        error = replaced.get(index, error)
    return holder[0], error


# --- rules ---------------------------------------------------------------------------------------


def applies(rule: OutputRule, topic: str | None, target: str | None = None) -> bool:
    """Whether `rule` judges this output: a job's on `topic` (`target` None), or a tool call's on
    `target` (`topic`: its job's topic, None outside a job).

    A rule with neither `topics` nor `targets` judges every output; one with `targets` only the
    results of those tool calls; one with `topics` only what is done inside jobs on those topics
    (both: the calls on those targets inside those jobs).
    """
    if rule.targets and (target is None or not any(compile_target(t).matches(target) for t in rule.targets)):
        return False
    return not rule.topics or (topic is not None and any(compile_glob(t).matches(topic) for t in rule.topics))


def _reason(rule: OutputRule, found: set[str]) -> str:
    if rule.reason:
        return rule.reason
    hits = ", ".join(f"`{d}`" for d in rule.detectors if d in found)
    return f"output rule `{rule.id}` found {hits}"

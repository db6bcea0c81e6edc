"""The output decision: scan a worker's result with the bundle's detectors, then allow, redact or
quarantine it.

Theory of operation. A result is any JSON value. `scan` walks it depth-first in a fixed order
(dict insertion order, list order), runs the named detectors over every string value (dict keys
are names chosen by the worker's code, not data, and are left alone) and reports each finding
with the JSON path of its string and the offsets inside it. At most `max_chars` characters of
strings are scanned; past that the result is marked incomplete and the caller fails closed.

`decide` applies the output rules of the bundle the way `Policy.decide` applies rules: only
rules whose topics match the job apply, a rule matches when one of its detectors found
something, the most restrictive decision wins (`quarantine` > `redact` > `allow`) and ties go to
the rule listed first; with no match the output is allowed under rule id `default`.

Redaction replaces each finding of a matching `redact` or `quarantine` rule by
`[REDACTED:<detector>]` (overlapping findings are merged first, so no fragment survives between
them). The redacted copy is then scanned again with those detectors until nothing is found:
joining text around a marker must never assemble a new secret. The input is never mutated.

Nothing here does I/O or reads a clock: the same output and rules give the same verdict.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from gatehouse.output.detectors import ALL_DETECTORS, MARKER_PREFIX, Detector, get_detector
from gatehouse.policy import EvaluationError, OutputRule, compile_glob

__all__ = ["DEFAULT_MAX_CHARS", "Finding", "OutputVerdict", "applies", "decide", "scan"]

DEFAULT_MAX_CHARS = 1_048_576

# Lower is more restrictive, as `gatehouse.policy.severity` ranks submit decisions.
_SEVERITY = {"quarantine": 0, "redact": 1, "allow": 2}
# Deeper than any JSON a parser accepts (orjson stops at 1024); a cycle in a Python-built value
# would otherwise walk forever.
_MAX_DEPTH = 10_000
# Re-scans of redacted text before the whole scanned string is replaced (see `_redact_string`).
_MAX_PASSES = 4
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Ties between findings at the same offsets go to the detector listed first in the table.
_ORDER = {d.name: i for i, d in enumerate(ALL_DETECTORS)}
# Detectors that find a secret by the name in front of it; under an object key they also read
# the value as `key=value`. Keys that could be names: a word of at most 64 characters.
_KEYED = frozenset({"password", "generic_api_key", "aws_secret_key"})
_KEY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing one detector found. `excerpt` is masked: it never holds the secret itself."""

    detector: str
    path: str  # JSON path of the string: "$", "$.stdout", "$.items[2].text"
    start: int  # offsets within that string
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
    output: Any, detectors: Iterable[str], *, max_chars: int = DEFAULT_MAX_CHARS
) -> tuple[tuple[Finding, ...], bool]:
    """Every finding of the named detectors in the strings of `output`, and whether all was scanned.

    Findings come in walk order, then by offset. Raises `EvaluationError` for an unknown
    detector name or a value that is not JSON.
    """
    hits, cut = _scan(output, _detectors(detectors), max_chars)
    return tuple(f for _, f in hits), cut is None


def decide(
    output: Any,
    rules: Sequence[OutputRule],
    *,
    topic: str,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> OutputVerdict:
    """The output decision for a job on `topic` (module docstring: which rule wins and why)."""
    applicable = [r for r in rules if applies(r, topic)]
    for rule in applicable:
        if rule.decision not in _SEVERITY:
            raise EvaluationError(
                f"output rule `{rule.id}` has decision `{rule.decision}`, not allow, redact or quarantine",
                code="bad_output_rule",
            )
    names = list(dict.fromkeys(d for r in applicable for d in r.detectors))
    hits, cut = _scan(output, _detectors(names), max_chars)
    complete = cut is None
    found = {f.detector for _, f in hits}
    findings = tuple(f for _, f in hits)
    matching = [r for r in applicable if found.intersection(r.detectors)]
    if not matching:
        return OutputVerdict("allow", "default", "no output rule matched", findings, output, complete)
    # min() keeps the first of equals, so ties go to the rule listed first.
    winner = min(matching, key=lambda r: _SEVERITY[r.decision])
    if winner.decision == "allow":
        redacted = output
    else:
        # Redact for every matching rule that hides something: under `quarantine` too, so the
        # reviewer's preview shows neither the key that caused it nor the PII beside it.
        hidden = {d for r in matching if r.decision != "allow" for d in r.detectors}
        recheck = _detectors(d for r in applicable if r.decision != "allow" for d in r.detectors)
        redacted = _redact(output, [(i, f) for i, f in hits if f.detector in hidden], recheck, cut)
    return OutputVerdict(winner.decision, winner.id, _reason(winner, found), findings, redacted, complete)


# --- scanning ----------------------------------------------------------------------------------


def _detectors(names: Iterable[str]) -> tuple[Detector, ...]:
    out: list[Detector] = []
    for name in dict.fromkeys(names):
        try:
            out.append(get_detector(name))
        except KeyError as exc:
            raise EvaluationError(str(exc.args[0]), code="unknown_detector") from None
    return tuple(out)


def _scan(
    output: Any, detectors: Sequence[Detector], max_chars: int
) -> tuple[list[tuple[int, Finding]], tuple[int, int] | None]:
    """(index of the string in walk order, finding) pairs, and where the scan stopped short.

    The second value is None when every string was scanned, else the index of the string the
    budget ran out in and how many of its characters were scanned.
    """
    if max_chars < 0:
        raise ValueError("max_chars must not be negative")
    budget = max_chars
    hits: list[tuple[int, Finding]] = []
    for index, (path, text, key) in enumerate(_strings(output)):
        cut = len(text) > budget
        if cut:
            text = text[:budget]
        budget -= len(text)
        found = [(s, e, d.name) for d in detectors for s, e in d.spans(text)]
        if key is not None:
            # `{"password": "hunter2"}`: the value alone names nothing; read it as `key=value`
            # for the detectors that look for a secret after its name, and keep what falls in
            # the value.
            offset = len(key) + 1
            keyed = f"{key}={text}"
            found += [
                (s - offset, e - offset, d.name)
                for d in detectors
                if d.name in _KEYED
                for s, e in d.spans(keyed)
                if s >= offset
            ]
            found = list(dict.fromkeys(found))
        found.sort(key=lambda h: (h[0], h[1], _ORDER[h[2]]))
        hits.extend((index, Finding(name, path, s, e, _mask(text[s:e]))) for s, e, name in found)
        if cut:
            return hits, (index, len(text))
    return hits, None


def _mask(secret: str) -> str:
    """`AKIA…[16 chars]`: at most four leading characters and never more than a quarter."""
    shown = secret[: min(4, len(secret) // 4)]
    return f"{shown}…[{len(secret) - len(shown)} chars]"


def _strings(value: Any) -> Iterator[tuple[str, str, str | None]]:
    """(JSON path, string, the object key it is the value of, if a short name) for every string
    in `value`, depth-first in document order."""
    stack: list[tuple[Any, str, int, str | None]] = [(value, "$", 0, None)]
    while stack:
        node, path, depth, key = stack.pop()
        if isinstance(node, str):
            yield path, node, key
        elif isinstance(node, (dict, list, tuple)):
            if depth >= _MAX_DEPTH:
                raise EvaluationError("output is nested too deeply to scan", code="output_too_deep")
            # Reversed onto the stack so that they come off in document order.
            stack.extend(
                (child, cpath, depth + 1, k if isinstance(k, str) and _KEY_NAME.fullmatch(k) else None)
                for k, child, cpath in reversed(_children(node, path))
            )
        elif not _is_json_scalar(node):
            raise EvaluationError(
                f"output holds a `{type(node).__name__}`, not a JSON value", code="output_not_json"
            )


def _children(node: dict[Any, Any] | list[Any] | tuple[Any, ...], path: str) -> list[tuple[Any, Any, str]]:
    if isinstance(node, dict):
        return [(key, child, _key_path(path, key)) for key, child in node.items()]
    return [(i, child, f"{path}[{i}]") for i, child in enumerate(node)]


def _key_path(path: str, key: Any) -> str:
    if isinstance(key, str) and _IDENTIFIER.fullmatch(key):
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key if isinstance(key, str) else str(key))}]"


def _is_json_scalar(node: Any) -> bool:
    return node is None or isinstance(node, (bool, int, float))


# --- redaction ---------------------------------------------------------------------------------


def _redact(
    output: Any,
    hits: Sequence[tuple[int, Finding]],
    recheck: Sequence[Detector],
    cut: tuple[int, int] | None,
) -> Any:
    """A copy of `output` with the given findings (and anything a re-scan finds) replaced."""
    by_string: dict[int, list[tuple[int, int, str]]] = {}
    for index, f in hits:
        by_string.setdefault(index, []).append((f.start, f.end, f.detector))
    replaced: dict[int, str] = {}
    for index, (_, text, _key) in enumerate(_strings(output)):
        if index in by_string:
            # Past the budget a string is neither scanned nor re-scanned: the verdict says it is
            # incomplete and the caller fails closed.
            tail = len(text) - cut[1] if cut is not None and cut[0] == index else 0
            replaced[index] = _redact_string(text, by_string[index], recheck, tail)
        if cut is not None and index >= cut[0]:
            break
    return _rebuild(output, replaced)


def _redact_string(
    text: str, spans: list[tuple[int, int, str]], recheck: Sequence[Detector], tail: int
) -> str:
    """`text` with `spans` replaced, re-scanned (all but the last `tail` characters) until clean."""
    for _ in range(_MAX_PASSES):
        text = _replace(text, spans)
        head = text[: len(text) - tail]
        spans = [(s, e, d.name) for d in recheck for s, e in d.spans(head)]
        if not spans:
            return text
    # Markers keep assembling new findings (never seen in practice): hide the whole head.
    return _marker(min(spans)[2]) + text[len(text) - tail :]


def _replace(text: str, spans: list[tuple[int, int, str]]) -> str:
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


def _rebuild(value: Any, replaced: dict[int, str]) -> Any:
    """A deep copy of `value` in which the n-th string (walk order) is `replaced[n]` if given.

    Containers are always copied, so the caller may change the result without touching the
    input. The walk order is the one `_strings` uses.
    """
    holder: list[Any] = [None]
    stack: list[tuple[Any, Any, Any, int]] = [(holder, 0, value, 0)]
    index = 0
    while stack:
        parent, slot, node, depth = stack.pop()
        if isinstance(node, str):
            parent[slot] = replaced.get(index, node)
            index += 1
        elif isinstance(node, (dict, list, tuple)):
            # The scan may have stopped at its budget before reaching a cycle: guard here too.
            if depth >= _MAX_DEPTH:
                raise EvaluationError("output is nested too deeply to scan", code="output_too_deep")
            copy: dict[Any, Any] | list[Any] = (
                dict.fromkeys(node) if isinstance(node, dict) else [None] * len(node)
            )
            parent[slot] = copy
            items = node.items() if isinstance(node, dict) else enumerate(node)
            stack.extend((copy, key, child, depth + 1) for key, child in reversed(list(items)))
        else:
            parent[slot] = node
    return holder[0]


# --- rules -------------------------------------------------------------------------------------


def applies(rule: OutputRule, topic: str) -> bool:
    """Whether `rule` judges the outputs of jobs on `topic` (no topics: all of them)."""
    return not rule.topics or any(compile_glob(t).matches(topic) for t in rule.topics)


def _reason(rule: OutputRule, found: set[str]) -> str:
    if rule.reason:
        return rule.reason
    hits = ", ".join(f"`{d}`" for d in rule.detectors if d in found)
    return f"output rule `{rule.id}` found {hits}"

"""Intent classification: prompt (and attachment text) -> labels and risk tags, with the reasons.

Deterministic and table-driven. A `Classifier` is a tuple of `Pattern` rows compiled once; the
request path only runs them. Every pattern that matches a text yields one `Hit` (its first match),
so an operator can see *why* a job was labelled `destructive`.

Combining hits:
- `command_class`: the most severe hit wins, `destructive` > `write` > `read`; with no command
  hit at all it is `none`. A client cannot lower it: `sanitise` drops a client-sent
  `command_class`, and this value is derived from the text alone.
- other labels (from extension patterns): the first hit in table order wins, prompt before
  attachments, so the result never depends on dict or set ordering.
- risk tags: the union, sorted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gatehouse.errors import BadRequest
from gatehouse.ingress.commands import COMMAND_PATTERNS
from gatehouse.ingress.needles import Needles
from gatehouse.ingress.patterns import COMMAND_CLASS, COMMAND_CLASSES, Pattern
from gatehouse.ingress.prefilter import fold
from gatehouse.ingress.risks import RISK_PATTERNS
from gatehouse.ingress.shell import might_hide_commands, unfold
from gatehouse.ingress.text import clean_text, visible

__all__ = ["DEFAULT_CLASSIFIER", "Classification", "Classifier", "Hit", "classify"]

EXCERPT_CHARS = 80
# The risk tag of a command that only the shell's reading of the text shows (`r""m -rf /`).
OBFUSCATED = "obfuscated_command"
_SEVERITY = {name: rank for rank, name in enumerate(COMMAND_CLASSES)}  # lower = more severe


@dataclass(frozen=True)
class Hit:
    """One pattern that matched, and the text it matched (escaped, at most 80 characters).

    `source` is `prompt` or `attachment[i]` (the index into `attachments_text`).
    """

    pattern: str
    label: str | None
    value: str | None
    risk_tag: str | None
    excerpt: str
    source: str = "prompt"

    def to_dict(self) -> dict[str, Any]:
        return {
            "pattern": self.pattern,
            "label": self.label,
            "value": self.value,
            "risk_tag": self.risk_tag,
            "excerpt": self.excerpt,
            "source": self.source,
        }


@dataclass(frozen=True)
class Classification:
    """Derived labels (always including `command_class`), risk tags, and the hits behind them."""

    labels: dict[str, str]
    risk_tags: tuple[str, ...]
    hits: tuple[Hit, ...]

    @property
    def command_class(self) -> str:
        return self.labels[COMMAND_CLASS]

    def to_dict(self) -> dict[str, Any]:
        return {
            "labels": dict(self.labels),
            "risk_tags": list(self.risk_tags),
            "hits": [h.to_dict() for h in self.hits],
        }


@dataclass(frozen=True)
class Classifier:
    """An ordered table of patterns. Build once (at startup or bundle load), use per request."""

    patterns: tuple[Pattern, ...]
    # Gate strings -> indices of the patterns they may let through; see `_plan`.
    _gates: tuple[tuple[str, bool, tuple[int, ...]], ...] = field(init=False, repr=False, compare=False)
    _always: frozenset[int] = field(init=False, repr=False, compare=False)
    _gates_by_text: tuple[tuple[tuple[str, tuple[int, ...]], ...], ...] = field(
        init=False, repr=False, compare=False
    )
    _needles: tuple[Needles, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "patterns", tuple(self.patterns))
        seen: set[str] = set()
        for p in self.patterns:
            if p.name in seen:
                raise BadRequest(
                    f"classifier pattern `{p.name}`: duplicate name",
                    code="bad_classifier_pattern",
                    details={"pattern": p.name},
                )
            seen.add(p.name)
        gates, always = _plan(self.patterns)
        object.__setattr__(self, "_gates", gates)
        object.__setattr__(self, "_always", always)
        # The same gates split by the text they test, for the request path's one tight loop.
        by_text = tuple(tuple((n, ix) for n, raw, ix in gates if raw is want) for want in (False, True))
        object.__setattr__(self, "_gates_by_text", by_text)
        object.__setattr__(self, "_needles", tuple(Needles([n for n, _ in g]) for g in by_text))

    def extend(self, patterns: Iterable[Mapping[str, Any]]) -> Classifier:
        """A new classifier with extra patterns (from config or a policy bundle) appended.

        Raises `BadRequest` (code `bad_classifier_pattern`) for unknown keys, a bad regex, a
        duplicate name, or examples the pattern does not itself satisfy.
        """
        extra = tuple(Pattern.from_mapping(p) for p in patterns)
        return Classifier(patterns=(*self.patterns, *extra))

    def classify(self, prompt: str, *, attachments_text: Sequence[str] = ()) -> Classification:
        sources = [("prompt", prompt)]
        sources += [(f"attachment[{i}]", text) for i, text in enumerate(attachments_text)]
        hits = self._scan(sources)
        # Read the text again as a shell would run it (quotes, escapes, variables and decoded
        # payloads taken away): a command that only shows there was spelled to hide.
        unfolded = [
            (f"{source} (as a shell reads it)", shell)
            for source, raw in sources
            if might_hide_commands(raw) and (shell := unfold(clean_text(raw)))
        ]
        if unfolded:
            seen = {(h.pattern, h.source) for h in hits}
            flagged: set[str] = set()
            for h in self._scan(unfolded):
                original = h.source.removesuffix(" (as a shell reads it)")
                if (h.pattern, original) in seen:
                    continue
                hits.append(h)
                if h.label == COMMAND_CLASS and h.value != "read" and h.source not in flagged:
                    flagged.add(h.source)
                    hits.append(Hit("shell_unfold", None, None, OBFUSCATED, h.excerpt, h.source))
            # A line that hides a command another line shows plainly still hides it: padding an
            # obfuscated payload with the plain command must not take the flag away. So the
            # lines of a text not flagged whole are compared one by one as well.
            for source, raw in sources:
                shell_source = f"{source} (as a shell reads it)"
                if shell_source in flagged or "\n" not in raw or not might_hide_commands(raw):
                    continue
                hit = self._hidden_in_a_line(source, raw)
                if hit is not None:
                    flagged.add(shell_source)
                    hits.append(Hit("shell_unfold", None, None, OBFUSCATED, hit.excerpt, shell_source))
        return _combine(hits)

    def _hidden_in_a_line(self, source: str, raw: str) -> Hit | None:
        """The first command hit that only the shell's reading of one line of `raw` shows."""
        for line in raw.splitlines():
            if not line.strip() or not might_hide_commands(line):
                continue
            shell = unfold(clean_text(line))
            if not shell:
                continue
            plain = {h.pattern for h in self._scan([(source, line)])}
            for h in self._scan([(source, shell)]):
                if h.label == COMMAND_CLASS and h.value != "read" and h.pattern not in plain:
                    return h
        return None

    def _scan(self, sources: Sequence[tuple[str, str]]) -> list[Hit]:
        hits: list[Hit] = []
        patterns = self.patterns
        for source, raw in sources:
            clean = clean_text(raw)
            folded = {False: fold(clean), True: fold(raw)}
            # One pass over the gate strings picks the few patterns that can match at all.
            candidates = set(self._always)
            for gates, needles, text_of in zip(
                self._gates_by_text, self._needles, (folded[False], folded[True]), strict=True
            ):
                for i in needles.present(text_of):
                    candidates.update(gates[i][1])
            for i in sorted(candidates):
                p = patterns[i]
                text = raw if p.raw else clean
                if p.prefilter is not None and not p.prefilter.passes(text, folded[p.raw]):
                    continue  # it cannot match: text it requires is absent
                m = p.compiled.search(text)
                if m is not None:
                    hits.append(Hit(p.name, p.label, p.value, p.risk_tag, _excerpt(p, m.group(0)), source))
        return hits


def classify(
    prompt: str,
    *,
    attachments_text: Sequence[str] = (),
    classifier: Classifier | None = None,
) -> Classification:
    """Classify `prompt` and the decoded text of kept attachments with `classifier`.

    `classifier` defaults to `DEFAULT_CLASSIFIER`.
    """
    chosen = DEFAULT_CLASSIFIER if classifier is None else classifier
    return chosen.classify(prompt, attachments_text=attachments_text)


def _plan(
    patterns: Sequence[Pattern],
) -> tuple[tuple[tuple[str, bool, tuple[int, ...]], ...], frozenset[int]]:
    """Index the patterns by one string requirement each: the one with the fewest strings, as
    every gate string costs a substring search per text.

    A pattern is a candidate for a text only if one of its gate strings is in the text; those
    without a string-only requirement are always candidates (their prefilter still runs).
    """
    by_needle: dict[tuple[str, bool], list[int]] = {}
    always: set[int] = set()
    for i, p in enumerate(patterns):
        strings_only = [r for r in (p.prefilter.requirements if p.prefilter else ()) if not r.chars]
        if not strings_only:
            always.add(i)
            continue
        gate = max(strings_only, key=lambda r: (-len(r.strings), r.score))
        for needle in gate.strings:
            by_needle.setdefault((needle, p.raw), []).append(i)
    gates = tuple((needle, raw, tuple(ix)) for (needle, raw), ix in sorted(by_needle.items()))
    return gates, frozenset(always)


def _combine(hits: list[Hit]) -> Classification:
    command_class = "none"
    other: dict[str, str] = {}
    for h in hits:
        if h.label is None or h.value is None:
            continue
        if h.label == COMMAND_CLASS:
            if _SEVERITY[h.value] < _SEVERITY[command_class]:
                command_class = h.value
        else:
            other.setdefault(h.label, h.value)
    tags = sorted({h.risk_tag for h in hits if h.risk_tag is not None})
    return Classification(
        labels={COMMAND_CLASS: command_class, **other},
        risk_tags=tuple(tags),
        hits=tuple(hits),
    )


def _excerpt(pattern: Pattern, matched: str) -> str:
    if pattern.sensitive:
        # Enough to recognise the kind of secret, never enough to use it.
        return visible(matched[:4], EXCERPT_CHARS) + f"\u2026 [redacted, {len(matched)} chars]"
    return visible(matched, EXCERPT_CHARS)


DEFAULT_CLASSIFIER = Classifier(patterns=(*COMMAND_PATTERNS, *RISK_PATTERNS))

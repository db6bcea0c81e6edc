"""Literal prefilters: skip a regex cheaply when text it requires is absent from the input.

Python's `re` has no multi-pattern automaton: the classifier used to run all of its ~80 regexes
over every prompt, 3 to 40 us each, although a typical prompt contains the keywords of only a
few. `Prefilter.of(regex, flags)` reads the regex's parse tree and keeps what every match must
contain, as a conjunction of requirements, each satisfied by any one of its literal strings
(compared case-insensitively) or any one of its exact characters. For
`\\b(?:curl|wget)\\b[^|]*\\|\\s*sh\\b` that is `{curl, wget}` and `{|}` and `{sh}`: a text
missing one of them cannot match, and the regex is not run.

Soundness is the whole point (a skipped regex is a missed `destructive`), so the reading is
conservative: a construct it does not understand requires nothing, and a prefilter can only
under-state what a match needs. Strings are compared on `fold(text)`, which over-approximates
both `re.IGNORECASE` and case-sensitive matching of ASCII literals; it also maps the four
non-ASCII characters that `re.IGNORECASE` equates with ASCII letters (Kelvin sign, long s, dotted
and dotless i), a list tests/ingress/test_ingress_prefilter.py checks against every code point.
Non-ASCII characters are only used from case-sensitive parts of a regex, and compared exactly.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Prefilter", "Requirement", "fold"]

# Code points other than ASCII that `re.IGNORECASE` matches against an ASCII letter.
_IGNORECASE_ASCII = {0x130: "i", 0x131: "i", 0x17F: "s", 0x212A: "k"}
# A character class is expanded into exact characters only up to this size.
_MAX_CLASS_CHARS = 512
# One-character strings worth a check: punctuation that ordinary prose rarely contains.
_RARE_SINGLES = frozenset("|;&$`<>{}[]\\")

try:  # the regex parser is private (untyped); without it every regex simply runs unfiltered
    from re import _constants as _c  # type: ignore[attr-defined]
    from re import _parser as _sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - other Python versions
    _sre_parse = None


def fold(text: str) -> str:
    """Text as requirement strings are compared with it: lower case, and the IGNORECASE
    equivalents of ASCII letters mapped to those letters."""
    if text.isascii():
        return text.lower()  # none of the IGNORECASE look-alikes is ASCII
    return text.translate(_IGNORECASE_ASCII).lower()


@dataclass(frozen=True, slots=True)
class Requirement:
    """Met when `fold(text)` contains one of `strings` or `text` contains one of `chars`."""

    strings: frozenset[str] = frozenset()
    chars: frozenset[str] = frozenset()

    def __or__(self, other: Requirement) -> Requirement:
        return Requirement(self.strings | other.strings, self.chars | other.chars)

    @property
    def score(self) -> int:
        """How selective it is: the shortest string's length; rare characters count as 3."""
        lengths = [len(s) for s in self.strings]
        if self.chars:
            lengths.append(3 if all(ord(ch) > 127 for ch in self.chars) else 1)
        return min(lengths)


class Prefilter:
    """The requirements of one regex, compiled for fast checks."""

    __slots__ = ("_checks", "requirements")

    def __init__(self, requirements: Sequence[Requirement]) -> None:
        self.requirements = tuple(requirements)
        checks: list[tuple[tuple[str, ...], re.Pattern[str] | None]] = []
        for r in self.requirements:
            chars = _char_class(r.chars)
            checks.append((tuple(sorted(r.strings, key=len)), re.compile(chars) if chars else None))
        self._checks = tuple(checks)

    @classmethod
    def of(cls, regex: str, flags: int = 0) -> Prefilter | None:
        """The prefilter of `regex` compiled with `flags`, or None when nothing useful is known."""
        if _sre_parse is None:  # pragma: no cover
            return None
        try:
            tree = _sre_parse.parse(regex, flags)
        except Exception:  # an unparseable regex is refused elsewhere; never filter it
            return None
        icase = bool(tree.state.flags & re.IGNORECASE)
        found = _sequence(list(tree), icase)
        useful = [r for r in found if r.score >= 2 or (not r.chars and r.strings <= _RARE_SINGLES)]
        return cls(useful) if useful else None

    def passes(self, text: str, folded: str) -> bool:
        """False only when a match in `text` (whose `fold` is `folded`) is impossible."""
        for strings, chars in self._checks:
            for s in strings:
                if s in folded:
                    break
            else:
                if chars is None or chars.search(text) is None:
                    return False
        return True

    def __repr__(self) -> str:
        return f"Prefilter({list(self.requirements)!r})"


def _char_class(chars: frozenset[str]) -> str:
    """A regex character class for `chars`, as ranges (`re` tests a long list one by one)."""
    if not chars:
        return ""
    points = sorted(ord(ch) for ch in chars)
    ranges: list[list[int]] = [[points[0], points[0]]]
    for cp in points[1:]:
        if cp == ranges[-1][1] + 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    esc = re.escape
    parts = (esc(chr(lo)) if lo == hi else f"{esc(chr(lo))}-{esc(chr(hi))}" for lo, hi in ranges)
    return "[" + "".join(parts) + "]"


def _literal(op: Any, av: Any) -> str | None:
    """The ASCII character an item matches, if it matches exactly one (up to case)."""
    if op is _c.LITERAL and av < 128:
        return chr(av).lower()
    if op is _c.IN and len(av) == 1 and av[0][0] is _c.LITERAL and av[0][1] < 128:
        return chr(av[0][1]).lower()
    return None


def _sequence(items: Sequence[tuple[Any, Any]], icase: bool) -> list[Requirement]:
    """Requirements of a sequence: its runs of literals, and what each of its parts requires."""
    out: list[Requirement] = []
    run: list[str] = []

    def close() -> None:
        if run:
            out.append(Requirement(strings=frozenset(("".join(run),))))
            run.clear()

    for op, av in items:
        ch = _literal(op, av)
        if ch is not None:
            run.append(ch)
            continue
        if op is _c.AT:
            continue  # zero-width: the characters on either side are adjacent in the text
        if op is _c.BRANCH and run:
            # The parser factors a common prefix out of the alternatives (`nc|ncat` becomes
            # `n(?:c|cat)`); put it back so each alternative keeps its whole keyword.
            prefix = [(_c.LITERAL, ord(ch)) for ch in run]
            av = (av[0], [prefix + list(alt) for alt in av[1]])
        close()
        out.extend(_item(op, av, icase))
    close()
    return out


def _item(op: Any, av: Any, icase: bool) -> list[Requirement]:
    if op is _c.SUBPATTERN:
        _group, add_flags, del_flags, body = av
        inner = (icase or bool(add_flags & re.IGNORECASE)) and not del_flags & re.IGNORECASE
        return _sequence(list(body), inner)
    if op is _c.ATOMIC_GROUP:
        return _sequence(list(av), icase)
    if op in (_c.MAX_REPEAT, _c.MIN_REPEAT, getattr(_c, "POSSESSIVE_REPEAT", None)):
        low, _high, body = av
        return _sequence(list(body), icase) if low >= 1 else []
    if op is _c.ASSERT:
        # A positive lookaround: what it requires is in the text too (maybe outside the match).
        return _sequence(list(av[1]), icase)
    if op is _c.BRANCH:
        union = Requirement()
        for alternative in av[1]:
            found = _sequence(list(alternative), icase)
            if not found:
                return []  # one alternative needs nothing we know of: neither does the branch
            union |= max(found, key=lambda r: r.score)
        return [union]
    if op is _c.LITERAL and not icase:
        return [Requirement(chars=frozenset((chr(av),)))]  # a non-ASCII character, exactly
    if op is _c.IN and not icase:
        chars = _class_chars(av)
        return [Requirement(chars=chars)] if chars else []
    return []  # ANY, categories, negated or case-blind classes, negative lookarounds, refs


def _class_chars(items: Sequence[tuple[Any, Any]]) -> frozenset[str] | None:
    """The characters a (case-sensitive) character class matches, if it is a small set."""
    chars: set[str] = set()
    for op, av in items:
        if op is _c.LITERAL:
            chars.add(chr(av))
        elif op is _c.RANGE and av[1] - av[0] < _MAX_CLASS_CHARS:
            chars.update(chr(cp) for cp in range(av[0], av[1] + 1))
        else:
            return None  # NEGATE, CATEGORY, a huge range
        if len(chars) > _MAX_CLASS_CHARS:
            return None
    return frozenset(chars)

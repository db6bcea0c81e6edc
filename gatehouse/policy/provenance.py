"""Where a step's values came from: the session's untrusted outputs and its trusted prompt.

    prov = Provenance.start(trusted=["pay the electricity bill from my inbox"])
    prov = prov.with_untrusted(page_text)          # after each untrusted step result
    policy.decide({..., "params": params, "provenance": prov})

`from_untrusted: params.x` holds when the value, or any string in it (integers count as their
text), at least 6 characters long, occurs as a whole token (bounded by the text's ends or by
characters that are neither letters nor digits) in an output an earlier step returned from an
untrusted action; `from_prompt` the same, at least 3 characters, against the trusted texts (the
job's prompt, the session's task). Both compare `text.provenance_text` forms: folded, line
continuations removed, white space runs one space (DESIGN.md section 9).

Theory of operation. Every maximal run of letters and digits in a value must be a whole token of
the text where the value occurs (a run inside the value is bounded by the value's other
characters; a run at its edge by the occurrence's bounds). So each output is indexed once, when
it arrives, as token -> start offsets; a lookup takes the value's rarest token, and verifies only
the places that token sits at. A lookup costs a dict probe per token and output plus one
comparison per place the rarest token occurs, however large the text.

The value is immutable: `with_untrusted` returns a new one sharing the old outputs' indexes.
Past `bound` characters of untrusted output it keeps nothing more and is `bounded`: then
`from_untrusted` holds for every value, failing closed.
"""

from __future__ import annotations

import hashlib
import re
from array import array
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from gatehouse.policy.text import provenance_text

__all__ = ["DEFAULT_BOUND", "MIN_PROMPT", "MIN_UNTRUSTED", "Provenance", "strings_in"]

DEFAULT_BOUND = 4 * 1024 * 1024  # characters of untrusted output a session keeps
MIN_UNTRUSTED = 6
MIN_PROMPT = 3
_TOKEN = re.compile(r"[^\W_]+")
_MAX_DEPTH = 64


def strings_in(value: Any) -> Iterator[str]:
    """The strings of a value: itself, or those inside its lists and mapping values (integers as
    their text: an account number may arrive as a number)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, str):
            yield v
        elif isinstance(v, int) and not isinstance(v, bool):
            yield str(v)
        elif depth < _MAX_DEPTH:
            if isinstance(v, Mapping):
                stack.extend((item, depth + 1) for item in v.values())
            elif isinstance(v, list | tuple):
                stack.extend((item, depth + 1) for item in v)


def _alnum(c: str) -> bool:
    return c.isalnum()


@dataclass(frozen=True, slots=True)
class _Text:
    """One output (or prompt), in provenance form, with its token index."""

    text: str
    tokens: Mapping[str, array[int]]

    @classmethod
    def of(cls, raw: str) -> _Text:
        text = provenance_text(raw)
        tokens: dict[str, array[int]] = {}
        for m in _TOKEN.finditer(text):
            postings = tokens.get(m.group())
            if postings is None:
                postings = tokens[m.group()] = array("L")
            postings.append(m.start())
        return cls(text=text, tokens=tokens)

    def holds(self, value: str, runs: list[tuple[int, str]]) -> bool:
        """`value` (provenance form, with its letter/digit runs) occurs here as a whole token."""
        text = self.text
        if not runs:
            return _bare(text, value)
        best: array[int] | None = None
        best_offset = 0
        for offset, run in runs:
            postings = self.tokens.get(run)
            if postings is None:
                return False
            if best is None or len(postings) < len(best):
                best, best_offset = postings, offset
        assert best is not None
        n, size = len(value), len(text)
        for pos in best:
            start = pos - best_offset
            if start < 0 or not text.startswith(value, start):
                continue
            end = start + n
            if (start == 0 or not _alnum(text[start - 1])) and (end == size or not _alnum(text[end])):
                return True
        return False


def _bare(text: str, value: str) -> bool:
    """A value without letters or digits (`------`): scan for it."""
    i = text.find(value)
    while i >= 0:
        end = i + len(value)
        if (i == 0 or not _alnum(text[i - 1])) and (end == len(text) or not _alnum(text[end])):
            return True
        i = text.find(value, i + 1)
    return False


def _chain(digest: str, kind: str, texts: Iterable[str]) -> str:
    h = hashlib.sha256(digest.encode())
    for t in texts:
        h.update(f"{kind}{len(t)}:".encode())
        h.update(t.encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def _probe(value: str, minimum: int) -> tuple[str, list[tuple[int, str]]] | None:
    v = provenance_text(value).strip(" ")
    if len(v) < minimum:
        return None
    return v, [(m.start(), m.group()) for m in _TOKEN.finditer(v)]


@dataclass(frozen=True, slots=True)
class Provenance:
    """A session's untrusted outputs and trusted prompt, indexed (see the module docstring)."""

    untrusted: tuple[_Text, ...] = field(default=(), repr=False)
    trusted: tuple[_Text, ...] = field(default=(), repr=False)
    size: int = 0
    bound: int = DEFAULT_BOUND
    bounded: bool = False
    # A chained sha256 of every text added: two provenances with the same digest answer alike,
    # which is what lets a decision cache key on this value (its repr) without the texts.
    digest: str = ""

    @classmethod
    def start(cls, *, trusted: Iterable[str] = (), bound: int = DEFAULT_BOUND) -> Provenance:
        """A session's provenance before any untrusted output: its prompt or task."""
        texts = [t for t in trusted if t]
        return cls(trusted=tuple(_Text.of(t) for t in texts), bound=bound, digest=_chain("", "t", texts))

    def with_untrusted(self, output: Any) -> Provenance:
        """This provenance plus one untrusted output (its strings, each indexed)."""
        if self.bounded:
            return self
        raw = [s for s in strings_in(output) if s]
        size = self.size + sum(len(s) for s in raw)
        if size > self.bound:
            # Past the bound nothing more is kept, and every value counts as untrusted.
            return Provenance(
                trusted=self.trusted,
                size=size,
                bound=self.bound,
                bounded=True,
                digest=_chain(self.digest, "b", []),
            )
        return Provenance(
            untrusted=self.untrusted + tuple(_Text.of(s) for s in raw),
            trusted=self.trusted,
            size=size,
            bound=self.bound,
            digest=_chain(self.digest, "u", raw),
        )

    def with_trusted(self, text: str) -> Provenance:
        return Provenance(
            untrusted=self.untrusted,
            trusted=(*self.trusted, _Text.of(text)),
            size=self.size,
            bound=self.bound,
            bounded=self.bounded,
            digest=_chain(self.digest, "t", [text]),
        )

    def from_untrusted(self, value: Any) -> bool:
        """The value, or a string in it, came from an untrusted output (always, once bounded)."""
        if self.bounded:
            return True
        return self._search(value, self.untrusted, MIN_UNTRUSTED)

    def from_prompt(self, value: Any) -> bool:
        """The value, or a string in it, occurs in the trusted prompt or task."""
        return self._search(value, self.trusted, MIN_PROMPT)

    @staticmethod
    def _search(value: Any, texts: tuple[_Text, ...], minimum: int) -> bool:
        if not texts:
            return False
        for s in strings_in(value):
            probe = _probe(s, minimum)
            if probe is None:
                continue
            v, runs = probe
            for t in texts:
                if t.holds(v, runs):
                    return True
        return False

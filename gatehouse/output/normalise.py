"""Text as the detectors see it: Unicode folded, invisible characters gone, encoded blobs opened.

A worker that wants a secret past the gate need not hide it well: `AKIA…` in full-width
letters (U+FF21 and on), a zero-width space inside `AKIA…`, or the key in base64 or hex all
defeat a regex that reads the text as sent. So the gate reads two things besides it:

- `fold(text)`: the text under Unicode NFKC (full-width and other compatibility forms become
  ASCII) with format characters (category Cf: zero-width spaces and joiners, soft hyphens,
  bidirectional controls, the byte-order mark) and a few invisible fillers removed. The fold
  keeps, for every character it produces, the offset of the character it came from, so that a
  finding in the folded text is reported, and redacted, over the original characters, the
  invisible ones inside it included.
- `blobs(text)`: the base64 (standard or URL-safe) and hex runs of the text that decode to
  readable UTF-8. The gate scans what they decode to, to a depth and a number of characters it
  bounds, and a finding there covers the whole run.

Pure and standard library only, like the rest of `gatehouse.output`.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import re
import unicodedata
from dataclasses import dataclass

__all__ = ["Blob", "Folded", "blobs", "fold"]

# Unicode format characters (general category Cf, Unicode 15.1), then invisible fillers that are
# not Cf: the combining grapheme joiner, the Hangul fillers, variation selectors. Spelled as a
# class so that the common case, text without any, costs one regex search; a test checks the
# class against `unicodedata`.
_INVISIBLE_CLASS = (
    "\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f"
    "\u034f\u115f\u1160\u3164\uffa0\ufe00-\ufe0f\U000e0100-\U000e01ef"
)
_INVISIBLE = re.compile(f"[{_INVISIBLE_CLASS}]")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


@dataclass(frozen=True, slots=True)
class Folded:
    """Folded text and the way back to the offsets of the text it was folded from.

    `marks` is None when the fold changed nothing. Otherwise it lists, in order, the folded
    offsets where a run starts and the source offset of its first character: in a run that
    copies the source (`step` 1) the offsets advance together; in a run produced by one source
    character (`step` 0: `ﬁ` -> `fi`), every folded character maps back to that one character.
    """

    text: str
    marks: tuple[tuple[int, int, int], ...] | None = None  # (folded start, source start, step)

    def source_span(self, start: int, end: int) -> tuple[int, int]:
        """The source offsets of the folded span [start, end) (end > start)."""
        if self.marks is None:
            return start, end
        return self._source(start), self._source(end - 1) + 1

    def _source(self, pos: int) -> int:
        i = bisect.bisect_right(self.marks, (pos, 1 << 62, 2)) - 1  # type: ignore[arg-type]
        folded, source, step = self.marks[i]  # type: ignore[index]
        return source + (pos - folded) * step


_FOLD_CACHE: dict[str, str] = {}


def _fold_char(c: str) -> str:
    folded = _FOLD_CACHE.get(c)
    if folded is None:
        folded = "" if _INVISIBLE.match(c) else unicodedata.normalize("NFKC", c)
        if len(_FOLD_CACHE) < 65_536:
            _FOLD_CACHE[c] = folded
    return folded


def fold(text: str) -> Folded:
    """`text` under NFKC with format and invisible characters removed (module docstring)."""
    if text.isascii() or (unicodedata.is_normalized("NFKC", text) and _INVISIBLE.search(text) is None):
        return Folded(text)
    out: list[str] = []
    marks: list[tuple[int, int, int]] = [(0, 0, 1)]
    pos = 0  # source offset copied up to
    length = 0  # folded length so far
    for m in _NON_ASCII.finditer(text):
        c = m.group()
        folded = _fold_char(c)
        if folded == c:
            continue
        i = m.start()
        out.append(text[pos:i])
        length += i - pos
        if folded:
            marks.append((length, i, 0))
            out.append(folded)
            length += len(folded)
        pos = i + 1
        marks.append((length, pos, 1))
    if len(marks) == 1:
        return Folded(text)
    out.append(text[pos:])
    return Folded("".join(out), tuple(marks))


# --- encoded blobs ------------------------------------------------------------------------------

# Base64 (standard or URL-safe alphabet) of at least 16 characters, and even-length hex of at
# least 16 digits: the shortest secrets worth finding encode to more than that.
_BASE64_RUN = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{16,65536}+={0,2}(?![A-Za-z0-9+/=_-])")
_HEX_RUN = re.compile(r"(?<![0-9A-Za-z])(?:[0-9A-Fa-f]{2}){8,32768}+(?![0-9A-Za-z])")
_URLSAFE = str.maketrans("-_", "+/")


@dataclass(frozen=True, slots=True)
class Blob:
    """An encoded run of a text: where it is and the text it decodes to."""

    start: int
    end: int
    decoded: str


def blobs(text: str, limit: int) -> list[Blob]:
    """The base64 and hex runs of `text` that decode to readable text, at most `limit`
    decoded characters in all (the caller's bound)."""
    out: list[Blob] = []
    if len(text) < 16:
        return out
    for m in _BASE64_RUN.finditer(text):
        run = m.group()
        if not _maybe_base64(run):
            continue
        decoded = _readable(_b64decode(run))
        if decoded is not None:
            if len(decoded) > limit:
                break
            limit -= len(decoded)
            out.append(Blob(m.start(), m.end(), decoded))
    for m in _HEX_RUN.finditer(text):
        run = m.group()
        if run.isdigit() or run.isalpha():
            continue
        decoded = _readable(bytes.fromhex(run))
        if decoded is not None:
            if len(decoded) > limit:
                break
            limit -= len(decoded)
            out.append(Blob(m.start(), m.end(), decoded))
    return out


def _maybe_base64(run: str) -> bool:
    """Cheap filter before decoding: base64 of text mixes cases and rarely lacks a digit or
    padding; words, paths and identifiers in one case are not worth a decode."""
    if run.islower() or run.isupper():
        return False
    return run.endswith("=") or any(c.isdigit() or c in "+/" for c in run) or len(run) >= 24


def _b64decode(run: str) -> bytes:
    body = run.rstrip("=").translate(_URLSAFE)
    if len(body) % 4 == 1:  # one character too many to be base64: drop it
        body = body[:-1]
    try:
        return base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError):
        return b""


def _readable(raw: bytes) -> str | None:
    """`raw` as text when it is UTF-8 and mostly printable; None for binary data."""
    if len(raw) < 8:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    printable = sum(c.isprintable() or c in "\n\r\t" for c in text)
    return text if printable >= 0.95 * len(text) else None

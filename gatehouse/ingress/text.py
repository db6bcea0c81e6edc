"""Text normalisation shared by every ingress check.

Untrusted text can read one way to a human and another way to a regex: a zero-width space inside
`ign<ZWSP>ore`, a right-to-left override that reverses what follows, fullwidth letters that a
reviewer reads as `rm` but a plain regex does not. `clean_text` removes the invisible characters
and folds compatibility forms (NFKC) so that checks and policy rules see one canonical spelling.
The raw text is still what the classifier inspects for the hidden-character tricks themselves.
"""

from __future__ import annotations

import unicodedata

__all__ = ["BIDI_CONTROLS", "CONTROLS", "ZERO_WIDTH", "clean_text", "visible"]


def _chars(*ranges: tuple[int, int]) -> frozenset[str]:
    return frozenset(chr(cp) for lo, hi in ranges for cp in range(lo, hi + 1))


# C0 and C1 control characters (and DEL). Tab and newline stay: they carry layout that prompts and
# label values legitimately use; `\r` goes, so CRLF and LF text compare equal.
CONTROLS = _chars((0x00, 0x08), (0x0B, 0x1F), (0x7F, 0x9F))

# Characters that render as nothing. U+200B..U+200F, U+2060..U+2064 and U+FEFF are the classic set;
# the soft hyphen and the Mongolian vowel separator are invisible too, and the Unicode tag block
# (U+E0000..U+E007F) is used to smuggle ASCII instructions past a human reader ("ASCII smuggling").
ZERO_WIDTH = _chars(
    (0x200B, 0x200F),
    (0x2060, 0x2064),
    (0xFEFF, 0xFEFF),
    (0x00AD, 0x00AD),
    (0x180E, 0x180E),
    (0xE0000, 0xE007F),
)

# Bidirectional embedding, override and isolate controls ("Trojan Source"): they reorder how text
# is displayed without changing what a parser reads.
BIDI_CONTROLS = _chars((0x202A, 0x202E), (0x2066, 0x2069), (0x061C, 0x061C))

_STRIP = dict.fromkeys(ord(c) for c in CONTROLS | ZERO_WIDTH | BIDI_CONTROLS)


def clean_text(s: str) -> str:
    """Remove control, zero-width and bidi characters, then apply NFKC normalisation.

    Stripping happens first so that a base letter and a combining mark separated by an invisible
    character still compose. NFKC never produces a stripped character (checked over all of
    Unicode), so the result is stable: `clean_text(clean_text(s)) == clean_text(s)`.
    """
    if s.isascii() and s.isprintable():
        # Printable ASCII has nothing to strip and is its own NFKC form; most keys and values
        # are, and this runs a dozen times a submit.
        return s
    return unicodedata.normalize("NFKC", s.translate(_STRIP))


def visible(s: str, limit: int = 80) -> str:
    """`s` with unprintable characters escaped (`\\u200b`), cut to at most `limit` characters.

    Excerpts go to operators and audit records; an invisible match must still be seen.
    """
    out = "".join(c if c.isprintable() else _escape(c) for c in s)
    if len(out) > limit:
        return out[: limit - 1] + "\u2026"
    return out


def _escape(c: str) -> str:
    cp = ord(c)
    return f"\\u{cp:04x}" if cp <= 0xFFFF else f"\\U{cp:08x}"

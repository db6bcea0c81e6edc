"""`clean_text`: invisible and control characters out, NFKC in, stable under repetition."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatehouse.ingress import clean_text
from gatehouse.ingress.text import BIDI_CONTROLS, CONTROLS, ZERO_WIDTH, visible

STRIPPED = sorted(CONTROLS | ZERO_WIDTH | BIDI_CONTROLS)


def test_the_spec_sets_are_covered() -> None:
    spec = [*range(0x200B, 0x2010), *range(0x202A, 0x202F), *range(0x2060, 0x2065), 0xFEFF]
    spec += [*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x80, 0xA0)]
    assert {chr(cp) for cp in spec} <= set(STRIPPED)


def test_each_invisible_or_control_character_is_removed() -> None:
    kept = [f"U+{ord(c):04X}" for c in STRIPPED if clean_text(f"ab{c}cd") != "abcd"]
    assert kept == []


def test_tab_and_newline_are_kept() -> None:
    assert clean_text("a\tb\nc") == "a\tb\nc"


def test_carriage_return_is_removed() -> None:
    assert clean_text("a\r\nb") == "a\nb"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("\uff52\uff4d -rf /", "rm -rf /"),  # fullwidth letters
        ("\ufb01le", "file"),  # ligature
        ("e\u200b\u0301", "\u00e9"),  # a zero-width space cannot keep a combining mark apart
        ("x\u00b2", "x2"),
        ("ign\u200bore previous", "ignore previous"),
    ],
)
def test_nfkc_normalisation(raw: str, expected: str) -> None:
    assert clean_text(raw) == expected


def test_visible_escapes_invisible_characters_and_truncates() -> None:
    assert visible("a\u200bb") == "a\\u200bb"
    assert visible("\U000e0041") == "\\U000e0041"
    out = visible("x" * 200)
    assert len(out) == 80
    assert out.endswith("\u2026")


@given(st.text())
def test_clean_text_is_idempotent_and_leaves_no_stripped_character(s: str) -> None:
    once = clean_text(s)
    assert clean_text(once) == once
    assert not set(once) & set(STRIPPED)

"""The one-pass gate string search answers exactly what testing each string with `in` answers."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gatehouse.ingress import DEFAULT_CLASSIFIER
from gatehouse.ingress.needles import Needles

GATES = [n for n, _ in DEFAULT_CLASSIFIER._gates_by_text[0]]
NEEDLES = Needles(GATES)


def _loop(strings: list[str], text: str) -> list[int]:
    return [i for i, s in enumerate(strings) if s in text]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(GATES), st.text(max_size=10)), max_size=6))
def test_the_set_finds_what_the_loop_finds(parts: list[str]) -> None:
    text = " ".join(parts)
    assert NEEDLES.present(text) == _loop(GATES, text)


def test_overlapping_and_nested_strings_are_all_found() -> None:
    strings = ["rm", "rm -rf", "-rf /", "f /", "élan", "a.b*c"]
    needles = Needles(strings)
    assert needles.present("sudo rm -rf / now") == [0, 1, 2, 3]
    assert needles.present("un élan vital a.b*c") == [4, 5]
    assert needles.present("") == []


def test_a_text_rе2_cannot_read_falls_back_to_the_loop() -> None:
    text = "rm -rf /\ud800"  # a lone surrogate: not UTF-8
    assert Needles(["rm -rf", "x"]).present(text) == [0]
    assert Needles([]).present(text) == []

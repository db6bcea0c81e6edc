"""Literal prefilters: a regex is skipped only when it certainly cannot match.

The property under test is soundness: whenever a regex matches a text, its prefilter passes that
text. It is checked on generated regexes (with texts hypothesis builds to match them), on every
built-in pattern, and on the case-folding table against every Unicode code point.
"""

from __future__ import annotations

import re
import string
import sys

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gatehouse.ingress import DEFAULT_CLASSIFIER, Classifier, classify
from gatehouse.ingress.classify import _combine
from gatehouse.ingress.prefilter import Prefilter, Requirement, fold
from gatehouse.ingress.text import clean_text


def passes(regex: str, text: str, flags: int = re.IGNORECASE) -> bool:
    pf = Prefilter.of(regex, flags)
    return pf is None or pf.passes(text, fold(text))


# -- what is extracted ----------------------------------------------------------------------------


def test_keywords_alternatives_and_punctuation_are_required() -> None:
    pf = Prefilter.of(r"\b(?:curl|wget)\b[^|\n]{0,300}\|\s*(?:sudo\s+)?(?:ba|z)?sh\b", re.I)
    assert pf is not None
    assert pf.requirements == (
        Requirement(strings=frozenset({"curl", "wget"})),
        Requirement(strings=frozenset({"|"})),
        Requirement(strings=frozenset({"sh"})),
    )


def test_a_prefix_factored_out_by_the_parser_is_put_back() -> None:
    # `re` parses `nc|ncat|netcat` as `n(?:c|cat|etcat)`.
    pf = Prefilter.of(r"\b(?:nc|ncat|netcat)\s+\d+", 0)
    assert pf is not None
    assert pf.requirements[0].strings == {"nc", "ncat", "netcat"}


def test_optional_parts_and_classes_require_nothing() -> None:
    assert Prefilter.of(r"(?:rm)?\s*[a-z]+", re.I) is None
    assert Prefilter.of(r"\w+@\w+", 0) is None
    assert Prefilter.of(r"(?:drop|\d+)", re.I) is None  # one alternative needs no literal


def test_exact_characters_only_where_case_matters() -> None:
    pf = Prefilter.of("[\u202a-\u202e]", 0)
    assert pf is not None and pf.requirements[0].chars == {chr(c) for c in range(0x202A, 0x202F)}
    assert Prefilter.of("[\u0410-\u042f]x", re.I) is None  # a case-blind class: nothing known


def test_inline_flags_are_followed() -> None:
    pf = Prefilter.of(r"(?-i:[\u0410\u0412])", re.I)
    assert pf is not None and pf.requirements[0].chars == {"\u0410", "\u0412"}
    assert Prefilter.of(r"(?i:[\u0410\u0412])", 0) is None


def test_an_unparseable_regex_is_never_filtered() -> None:
    assert Prefilter.of("(unclosed", 0) is None


# -- case folding -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("regex", "text"),
    [
        ("kubectl delete", "\u212aUBECTL DELETE"),  # Kelvin sign
        ("sudo", "\u017fudo"),  # long s
        ("insert into", "\u0130NSERT \u0131nto"),  # dotted and dotless i
        ("rm -rf", "RM -RF"),
    ],
)
def test_ignorecase_equivalents_of_ascii_pass(regex: str, text: str) -> None:
    assert re.search(regex, text, re.I)
    assert passes(regex, text)


def test_fold_covers_every_character_ignorecase_equates_with_ascii() -> None:
    """Every code point that `re.IGNORECASE` matches against an ASCII character folds to it."""
    ascii_any = re.compile(r"[\x00-\x7f]", re.IGNORECASE)
    for cp in range(0x80, sys.maxunicode + 1):
        ch = chr(cp)
        if ascii_any.fullmatch(ch):
            equal = [a for a in string.printable if re.fullmatch(re.escape(a), ch, re.IGNORECASE)]
            assert equal, hex(cp)
            assert fold(ch) == equal[0].lower(), hex(cp)


# -- soundness on generated regexes ---------------------------------------------------------------

_ALPHABET = "abcKkSsIi|-;/ \u212a\u017f\u0130\u0131\u0410\u0430\u202e"
_atoms = st.one_of(
    st.sampled_from(list(_ALPHABET)).map(re.escape),
    st.sampled_from(["rm", "curl", "sh", "Kk", "ab", "abc", "s\u0130", "\u0410\u0430", "--"]),
    st.sampled_from([r"\w", r"\s", ".", r"\d", "[a-c]", "[^a]", "[\u0410-\u0413]", "[|;]", "[Kk\u212a]"]),
)


def _regexes() -> st.SearchStrategy[str]:
    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.lists(inner, min_size=1, max_size=5).map("".join),
            st.lists(inner, min_size=2, max_size=3).map(lambda xs: "(?:" + "|".join(xs) + ")"),
            st.tuples(inner, st.sampled_from(["*", "+", "?", "{2}", "{0,3}", "{1,2}?", "++"])).map(
                lambda t: f"(?:{t[0]}){t[1]}"
            ),
            inner.map(lambda x: f"(?={x})"),
            inner.map(lambda x: f"(?!{x})"),
            inner.map(lambda x: f"(?>{x})"),
            inner.map(lambda x: f"({x})"),
            inner.map(lambda x: f"(?i:{x})"),
            inner.map(lambda x: f"(?-i:{x})"),
            inner.map(lambda x: rf"\b{x}\b"),
        )

    return st.recursive(_atoms, extend, max_leaves=12)


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(regex=_regexes(), ignore_case=st.booleans(), data=st.data())
def test_a_matching_text_always_passes_the_prefilter(
    regex: str, ignore_case: bool, data: st.DataObject
) -> None:
    flags = re.IGNORECASE if ignore_case else 0
    try:
        compiled = re.compile(regex, flags)
    except re.error:
        assume(False)
    text = data.draw(
        st.one_of(
            st.from_regex(compiled),
            st.text(alphabet=_ALPHABET, max_size=30),
        )
    )
    if compiled.search(text):
        assert passes(regex, text, flags), (regex, text)


@pytest.mark.parametrize("pattern", DEFAULT_CLASSIFIER.patterns, ids=lambda p: p.name)
def test_builtin_examples_and_their_case_variants_pass(pattern) -> None:  # type: ignore[no-untyped-def]
    for example in pattern.examples:
        for variant in (example, example.upper(), example.swapcase(), example.replace("k", "\u212a")):
            text = variant if pattern.raw else clean_text(variant)
            if pattern.compiled.search(text):
                assert pattern.prefilter is None or pattern.prefilter.passes(text, fold(text)), variant


def _unfiltered(classifier: Classifier, prompt: str) -> set[str]:
    """The pattern names that match, running every regex (no prefilter)."""
    clean = clean_text(prompt)
    return {p.name for p in classifier.patterns if p.compiled.search(prompt if p.raw else clean)}


def _corpus() -> list[str]:
    texts: list[str] = []
    for p in DEFAULT_CLASSIFIER.patterns:
        for t in (*p.examples, *p.counter_examples):
            texts += [t, t.upper(), f"please run: {t} and report back", t.replace("s", "\u017f")]
    return texts


def test_classify_finds_exactly_what_running_every_regex_finds() -> None:
    # Over the text as written; the shell's reading of it (`shell.unfold`) only adds hits.
    for text in _corpus():
        found = {h.pattern for h in classify(text).hits if h.source == "prompt"}
        assert found == _unfiltered(DEFAULT_CLASSIFIER, text), text


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_corpus()), min_size=1, max_size=4), st.text(max_size=40))
def test_classify_equals_unfiltered_on_mixed_text(parts: list[str], noise: str) -> None:
    text = noise.join(parts)
    assert {h.pattern for h in classify(text).hits if h.source == "prompt"} == _unfiltered(
        DEFAULT_CLASSIFIER, text
    )
    assert _combine(list(classify(text).hits)).labels == classify(text).labels

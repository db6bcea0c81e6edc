"""Topic globs: `*` stays inside one segment, `**` crosses dots, everything else is literal."""

from __future__ import annotations

import pytest
from _reference import glob_match
from hypothesis import given, settings
from hypothesis import strategies as st

from gatehouse.policy import compile_glob, is_valid_topic
from gatehouse.policy.glob import GlobError

MATCHES = [
    ("job.exec.*", "job.exec.shell"),
    ("job.exec.*", "job.exec.sandbox"),
    ("job.db.re*", "job.db.read"),
    ("job.db.re*", "job.db.restore"),
    ("job.db.re*", "job.db.re"),  # `*` may match nothing
    ("job.**", "job.a"),
    ("job.**", "job.a.b.c"),
    ("**", "job"),
    ("**", "job.exec.shell.bash"),
    ("*", "job"),
    ("job.*.apply", "job.deploy.apply"),
    ("job.**.apply", "job.deploy.prod.apply"),
    ("job.**.apply", "job.x.apply"),
    ("*.exec.*", "job.exec.shell"),
    ("job.d*y.apply", "job.deploy.apply"),
    ("job.*-*.x", "job.a-b.x"),
    ("job.exec.shell", "job.exec.shell"),
    ("Job_1.A-b", "Job_1.A-b"),
]

NON_MATCHES = [
    ("job.exec.*", "job.exec.shell.bash"),
    ("job.exec.*", "job.exec"),
    ("job.exec.*", "job.execs.shell"),
    ("job.db.re*", "job.db.write"),
    ("job.db.re*", "job.db.read.all"),
    ("job.**", "jobs.a"),
    ("job.**", "job"),
    ("job.**", "xjob.a"),
    ("*", "job.exec"),
    ("job.*.apply", "job.deploy.prod.apply"),
    ("job.*.apply", "job.deploy.plan"),
    ("job.**.apply", "job.apply"),
    ("job.exec.shell", "job.exec.shel"),
    ("job.exec.shell", "job.exec.shells"),
    ("job.exec.shell", "job.exec.shell.x"),
    # A dot in a pattern is literal, never "any character".
    ("job.exec", "jobxexec"),
    ("job.d*y.apply", "job.d.y.apply"),
    # Topics are case-sensitive.
    ("job.exec.*", "JOB.exec.shell"),
]


@pytest.mark.parametrize(("pattern", "topic"), MATCHES)
def test_glob_matches(pattern: str, topic: str) -> None:
    assert compile_glob(pattern).matches(topic)


@pytest.mark.parametrize(("pattern", "topic"), NON_MATCHES)
def test_glob_does_not_match(pattern: str, topic: str) -> None:
    assert not compile_glob(pattern).matches(topic)


@pytest.mark.parametrize(
    "pattern",
    [
        "",
        "job..x",
        ".job",
        "job.",
        "job.***",
        "***",
        "job.a***b",
        "job.$",
        "job.exec shell",
        "job/exec",
        "job.é",
        "job.[ab]",
        "job.?",
        "job.exec.\n",
        "job.exec\n",
    ],
)
def test_bad_globs_are_rejected(pattern: str) -> None:
    with pytest.raises(GlobError):
        compile_glob(pattern)


def test_glob_error_is_a_value_error_with_the_pattern_in_backticks() -> None:
    with pytest.raises(ValueError, match=r"bad glob `job\.\.x`: empty segment"):
        compile_glob("job..x")
    with pytest.raises(ValueError, match=r"`\*\*\*`"):
        compile_glob("job.***")


@pytest.mark.parametrize(
    ("pattern", "kind", "prefix"),
    [
        ("job.exec.shell", "exact", ("job", "exec", "shell")),
        ("job.exec.*", "star", ("job", "exec")),
        ("job.**", "dstar", ("job",)),
        ("**", "dstar", ()),
        ("*", "star", ()),
        ("job.db.re*", "regex", ("job", "db")),
        ("job.*.apply", "regex", ("job",)),
        ("*.exec", "regex", ()),
    ],
)
def test_glob_classification_for_the_index(pattern: str, kind: str, prefix: tuple[str, ...]) -> None:
    g = compile_glob(pattern)
    assert (g.kind, g.prefix, g.pattern) == (kind, prefix, pattern)


@pytest.mark.parametrize(
    "topic",
    ["job", "job.exec.shell", "job.deploy-v2.apply", "a_b.C9", "x.y.z.w.v"],
)
def test_valid_topics(topic: str) -> None:
    assert is_valid_topic(topic)


@pytest.mark.parametrize(
    "topic",
    [
        "",
        ".",
        "job.",
        ".job",
        "job..exec",
        "job.exec.*",
        "job.**",
        "job exec",
        "job.$",
        "job.é",
        "job.exec\n",  # `$` alone would let a trailing newline through
        "job.exec\r",
    ],
)
def test_invalid_topics(topic: str) -> None:
    assert not is_valid_topic(topic)


# The compiled regex against the naive recursive matcher, on a small alphabet so hits are common.
_SEGS = ["job", "exec", "re", "read", "a", "a-b", "x_1"]
_topic = st.lists(st.sampled_from(_SEGS), min_size=1, max_size=4).map(".".join)
_pattern_segment = st.one_of(
    st.sampled_from(_SEGS),
    st.sampled_from(["*", "**", "re*", "*d", "r*d", "a**", "**b", "*-*"]),
)
_pattern = st.lists(_pattern_segment, min_size=1, max_size=4).map(".".join)


@settings(max_examples=400, deadline=None)
@given(pattern=_pattern, topic=st.one_of(_topic, st.sampled_from(["", "job.", ".a", "a..b"])))
def test_compiled_glob_agrees_with_a_naive_matcher(pattern: str, topic: str) -> None:
    assert compile_glob(pattern).matches(topic) is glob_match(pattern, topic)


def test_naive_matcher_itself_is_sane() -> None:
    # The reference is only useful if it is right on the documented examples.
    for pattern, topic in MATCHES:
        assert glob_match(pattern, topic), (pattern, topic)
    for pattern, topic in NON_MATCHES:
        assert not glob_match(pattern, topic), (pattern, topic)


def test_double_star_matches_any_character_including_a_newline() -> None:
    # The index trusts `**` to match anything, so the regex must too (or decide and scan differ).
    assert compile_glob("job.**").matches("job.a\nb")
    assert compile_glob("**").matches("x\ny")

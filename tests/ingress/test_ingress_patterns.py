"""The built-in pattern table, row by row, and extending it from config.

Every row must carry examples and counter-examples; the parametrised tests below run each one
through `classify`, so a row added without examples, or with a regex that misses its own
examples, fails here.
"""

from __future__ import annotations

from typing import Any

import pytest

from gatehouse.errors import BadRequest
from gatehouse.ingress import COMMAND_CLASSES, DEFAULT_CLASSIFIER, Classifier, Pattern, classify

PATTERNS = DEFAULT_CLASSIFIER.patterns
SEVERITY = {name: rank for rank, name in enumerate(COMMAND_CLASSES)}

EXAMPLES = [pytest.param(p, ex, id=f"{p.name}[{i}]") for p in PATTERNS for i, ex in enumerate(p.examples)]
COUNTER_EXAMPLES = [
    pytest.param(p, ex, id=f"{p.name}[{i}]") for p in PATTERNS for i, ex in enumerate(p.counter_examples)
]


@pytest.mark.parametrize("pattern", PATTERNS, ids=lambda p: p.name)
def test_every_pattern_documents_itself(pattern: Pattern) -> None:
    assert pattern.examples, f"{pattern.name} has no examples"
    assert pattern.counter_examples, f"{pattern.name} has no counter-examples"
    assert pattern.description


def test_pattern_names_are_unique() -> None:
    names = [p.name for p in PATTERNS]
    assert len(names) == len(set(names))


@pytest.mark.parametrize(("pattern", "example"), EXAMPLES)
def test_each_example_is_classified_by_its_pattern(pattern: Pattern, example: str) -> None:
    result = classify(example)
    hit = [h for h in result.hits if h.pattern == pattern.name]
    assert hit, f"{pattern.name} did not match {example!r}"
    if pattern.label is not None and pattern.value is not None:
        if pattern.label == "command_class":
            # Another row may be more severe, never less.
            assert SEVERITY[result.command_class] <= SEVERITY[pattern.value]
        else:
            assert pattern.label in result.labels
    if pattern.risk_tag is not None:
        assert pattern.risk_tag in result.risk_tags


@pytest.mark.parametrize(("pattern", "example"), COUNTER_EXAMPLES)
def test_no_counter_example_is_matched_by_its_pattern(pattern: Pattern, example: str) -> None:
    assert pattern.name not in {h.pattern for h in classify(example).hits}


def test_the_table_covers_every_command_class_and_risk_tag() -> None:
    classes = {p.value for p in PATTERNS if p.label == "command_class"}
    assert classes == {"destructive", "write", "read"}
    tags = {p.risk_tag for p in PATTERNS if p.risk_tag}
    assert tags == {"prompt_injection_suspected", "secrets_in_input", "network_egress"}


# -- extension ------------------------------------------------------------------------------------

PROD = {
    "name": "prod_env",
    "regex": r"\bprod(?:uction)?\b",
    "label": "env",
    "value": "prod",
    "description": "mentions production",
    "examples": ["deploy to production"],
    "counter_examples": ["a product launch"],
}


def test_extend_adds_a_label_pattern_and_leaves_the_default_alone() -> None:
    custom = DEFAULT_CLASSIFIER.extend([PROD])
    assert custom is not DEFAULT_CLASSIFIER
    assert len(custom.patterns) == len(PATTERNS) + 1
    result = classify("deploy to production", classifier=custom)
    assert result.labels == {"command_class": "write", "env": "prod"}
    assert "prod_env" in {h.pattern for h in result.hits}
    assert "env" not in classify("deploy to production").labels


def test_extend_can_add_a_destructive_command_and_a_risk_tag() -> None:
    custom = DEFAULT_CLASSIFIER.extend(
        [
            {
                "name": "nuke",
                "regex": r"\bnuke\s+cluster\b",
                "label": "command_class",
                "value": "destructive",
            },
            {
                "name": "pii",
                "regex": r"\b\d{3}-\d{2}-\d{4}\b",
                "risk_tag": "pii_in_input",
                "ignore_case": False,
                "sensitive": True,
            },
        ]
    )
    result = classify("please nuke cluster, ssn 123-45-6789", classifier=custom)
    assert result.command_class == "destructive"
    assert result.risk_tags == ("pii_in_input",)
    excerpt = next(h.excerpt for h in result.hits if h.pattern == "pii")
    assert "6789" not in excerpt


def test_extension_labels_resolve_first_hit_wins() -> None:
    custom = Classifier(patterns=()).extend(
        [
            {"name": "a", "regex": "alpha", "label": "team", "value": "a"},
            {"name": "b", "regex": "beta", "label": "team", "value": "b"},
        ]
    )
    assert classify("beta alpha", classifier=custom).labels["team"] == "a"
    assert classify("beta", classifier=custom).labels["team"] == "b"


def test_an_empty_classifier_finds_nothing() -> None:
    result = classify("rm -rf /", classifier=Classifier(patterns=()))
    assert result.labels == {"command_class": "none"}
    assert result.hits == ()


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ({**PROD, "regexp": "x"}, "unknown key `regexp`"),
        ({**PROD, "regex": "(unclosed"}, "bad regex"),
        ({k: v for k, v in PROD.items() if k != "name"}, "missing key `name`"),
        ({k: v for k, v in PROD.items() if k != "regex"}, "missing key `regex`"),
        ({**PROD, "name": "rm_recursive"}, "duplicate name"),
        ({**PROD, "name": "Bad Name"}, "name must match"),
        ({**PROD, "value": None}, "`label` and `value` go together"),
        ({"name": "x", "regex": "x"}, "must set a `label` or a `risk_tag`"),
        ({"name": "x", "regex": "x", "label": "command_class", "value": "harmless"}, "one of"),
        ({"name": "x", "regex": "x", "risk_tag": "Bad Tag"}, "risk tag"),
        ({"name": "x", "regex": "a*", "risk_tag": "t"}, "matches the empty string"),
        ({**PROD, "examples": ["staging only"]}, "example `staging only` does not match"),
        ({**PROD, "counter_examples": ["prod"]}, "counter-example `prod` matches"),
        ({**PROD, "examples": "deploy to production"}, "must be a list of strings"),
        ({**PROD, "ignore_case": "yes"}, "must be true or false"),
        ({**PROD, "label": 3}, "`label` must be a string"),
        ({**PROD, "regex": 3}, "`regex` must be a string"),
        ("not a mapping", "must be a mapping"),
    ],
)
def test_bad_extension_patterns_are_rejected(pattern: Any, message: str) -> None:
    with pytest.raises(BadRequest) as exc_info:
        DEFAULT_CLASSIFIER.extend([pattern])
    assert exc_info.value.code == "bad_classifier_pattern"
    assert message in exc_info.value.message


def test_a_classifier_with_duplicate_names_is_rejected() -> None:
    p = Pattern("x", "x", risk_tag="t")
    with pytest.raises(BadRequest) as exc_info:
        Classifier(patterns=(p, p))
    assert exc_info.value.code == "bad_classifier_pattern"

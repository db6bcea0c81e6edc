"""The one table of secret shapes, and the three places that read it agree on every row.

Ingress (`secrets_in_input`), the output gate and the audit preview used to spell the secret
shapes three times and disagreed: `ABIA...` was caught at output but not at ingress, `AGPA...`
the reverse, and `redact_preview("use ASIA...")` kept the key id in clear. These tests run every
example of every shape through all three.
"""

from __future__ import annotations

import pytest

from gatehouse.audit.chain import redact_preview
from gatehouse.ingress import classify
from gatehouse.ingress.secrets import AWS_KEY_ID_PREFIXES, SECRET_SHAPES, SecretShape
from gatehouse.output import get_detector

# The output detector that covers each shape (a prefixed key is one form of `generic_api_key`).
OUTPUT_DETECTOR = {"prefixed_api_key": "generic_api_key"}

EXAMPLES = [(s.name, ex) for s in SECRET_SHAPES for ex in s.examples]


def test_every_aws_key_id_prefix_is_in_the_table() -> None:
    assert set(AWS_KEY_ID_PREFIXES) == {
        "AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA", "AROA", "AIPA", "ANPA", "ANVA", "APKA"
    }  # fmt: skip
    aws = next(s for s in SECRET_SHAPES if s.name == "aws_access_key")
    assert {ex[:4] for ex in aws.examples} == set(AWS_KEY_ID_PREFIXES)


@pytest.mark.parametrize("row", SECRET_SHAPES, ids=lambda s: s.name)
def test_each_row_matches_its_examples(row: SecretShape) -> None:
    assert row.examples
    assert row.example_problems() == ()


def test_a_row_with_a_bad_example_is_reported() -> None:
    # Guard the guard: the self-test above must be able to fail.
    row = SecretShape(name="x", regex=r"AKIA[A-Z0-9]{16}", description="", examples=("AKIA123",))
    assert row.example_problems() == ("example 'AKIA123' is not matched",)


@pytest.mark.parametrize(("name", "secret"), EXAMPLES)
def test_ingress_tags_every_shape(name: str, secret: str) -> None:
    result = classify(f"please use {secret} for the deploy")
    assert "secrets_in_input" in result.risk_tags
    assert name in {h.pattern for h in result.hits if h.risk_tag == "secrets_in_input"}


@pytest.mark.parametrize(("name", "secret"), EXAMPLES)
def test_the_output_gate_finds_every_shape(name: str, secret: str) -> None:
    detector = get_detector(OUTPUT_DETECTOR.get(name, name))
    text = f"result: {secret} done"
    spans = detector.spans(text)
    assert spans, f"{detector.name} misses {secret!r}"
    start = text.index(secret)
    # The finding covers the token itself (a private key header may extend to its block).
    assert any(s <= start and e >= start + min(len(secret), 20) for s, e in spans)


@pytest.mark.parametrize(("name", "secret"), EXAMPLES)
def test_the_audit_preview_masks_every_shape(name: str, secret: str) -> None:
    preview = redact_preview(f"use {secret} now", limit=4096)
    assert "[redacted]" in preview
    # No run of the key long enough to identify it survives.
    assert secret[:12] not in preview or secret[:12].startswith("-----BEGIN")
    assert secret not in preview


@pytest.mark.parametrize("prefix", AWS_KEY_ID_PREFIXES)
def test_every_aws_key_id_prefix_is_caught_by_all_three(prefix: str) -> None:
    key = f"{prefix}2E0A8F3B244C9986"
    assert "aws_access_key" in {h.pattern for h in classify(f"key {key}").hits}
    assert get_detector("aws_access_key").spans(f"id={key}") == [(3, 23)]
    assert key not in redact_preview(f"use {key}")


def test_the_audit_preview_masks_a_temporary_aws_key_id() -> None:
    # The probe from the architecture review: this key id used to reach the audit log in clear.
    assert redact_preview("use ASIAY34FZKBOKMUTVV7A") == "use [redacted]"

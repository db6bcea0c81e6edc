"""`redact_preview`: the audit log's short, secret-masked view of a prompt."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatehouse.audit.chain import _SECRETISH, redact_preview


def reference(text: str, limit: int = 64) -> str:
    """The preview with the whole alternation always applied (no keyword shortcut)."""
    masked = _SECRETISH.sub("[redacted]", text[: limit * 4])
    return masked[:limit] + ("…" if len(masked) > limit or len(text) > limit * 4 else "")


@settings(max_examples=500, deadline=None)
@given(
    st.text(alphabet="aZ09+/_=-.%@ :\nPASSWORDpasswdSecretTOKENapi_key\u0130\u0131\u017f\u212a", max_size=120)
)
def test_the_keyword_shortcut_never_changes_the_preview(text: str) -> None:
    assert redact_preview(text) == reference(text)


# Pieces of the shared table's shapes (and near misses), so that the shapes shortcut is tried on
# texts where a shape does, and where it cannot, match.
_PIECES = [
    *("AKIA", "ASIA", "ABIA", "Y34FZKBO", "KMUTVV7A", "gh", "ghp_", "xoxb-", "eyJ", ".eyJ", "sk-"),
    *("AIza", "glpat-", "-----BEGIN ", "PRIVATE KEY-----", "a1B2", "0123456789", " ", "-", "_", "x"),
]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=30).map("".join))
def test_the_shapes_shortcut_never_changes_the_preview(text: str) -> None:
    assert redact_preview(text) == reference(text)


@pytest.mark.parametrize(
    "text",
    [
        "password = hunter2",
        "PA\u017f\u017fWORD: hunter2",  # long s: IGNORECASE reads it as `s`
        "ap\u0131_key=abc",  # dotless i
        "TO\u212aEN: abc",  # Kelvin sign
        "mail jane.doe@example.com",
        "AKIAIOSFODNN7EXAMPLE",
        "use ASIAY34FZKBOKMUTVV7A",  # a temporary key id: once left in clear
        "ABIAY34FZKBOKMUTVV7A",
        "-----BEGIN PGP PRIVATE KEY BLOCK-----",
    ],
)
def test_secrets_and_their_lookalike_spellings_are_masked(text: str) -> None:
    assert "[redacted]" in redact_preview(text)


def test_plain_text_is_kept_and_cut_to_the_limit() -> None:
    text = "deploy the payments service to staging " * 5
    assert redact_preview(text) == text[:64] + "…"

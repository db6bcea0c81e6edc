"""Canonical JSON: what every hash and signature covers must be stable and unambiguous."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gatehouse.crypto import SigningKey, canonical


def reference(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# Everything the service hashes: strings (any Unicode scalar, control characters included),
# 64-bit integers, booleans, null, timestamps, nested lists and objects.
_text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=20)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(min_value=1e-4, max_value=1e15, allow_nan=False),
    st.floats(min_value=1e9, max_value=4e9, allow_nan=False),  # time.time()
    _text,
)
_json = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(_text, inner, max_size=5)),
    max_leaves=25,
)


@settings(max_examples=500, deadline=None)
@given(_json)
def test_canonical_is_the_standard_library_spelling(data: Any) -> None:
    assert canonical(data) == reference(data)


@settings(max_examples=200, deadline=None)
@given(_json)
def test_canonical_round_trips(data: Any) -> None:
    assert json.loads(canonical(data)) == data


def test_keys_are_sorted_by_code_point_and_output_has_no_whitespace() -> None:
    assert canonical({"b": 1, "a": [1, 2], "\u00e9": None, "Z": "\n\u2028"}) == (
        '{"Z":"\\n\u2028","a":[1,2],"b":1,"\u00e9":null}'.encode()
    )


def test_integers_beyond_64_bits_still_have_one_spelling() -> None:
    big = {"n": 2**70, "m": -(2**65)}
    assert canonical(big) == reference(big)
    assert canonical(big) == canonical(dict(reversed(big.items())))


def test_a_signature_over_canonical_bytes_survives_key_order() -> None:
    key = SigningKey.generate()
    claims = {"job_id": "job_1", "nonce": "n", "expires_at": 1.7e9}
    sig = key.sign(canonical(claims))
    assert key.verify_key.verify(canonical(dict(reversed(claims.items()))), sig)

"""`sanitise`: server-only keys never survive, meta is an allow-list, label text is normalised."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatehouse.ingress import (
    META_KEYS,
    RESERVED_KEYS,
    Dropped,
    Sanitised,
    sanitise,
)


def reasons(result: Sanitised) -> dict[tuple[str, str], str]:
    return {(d.field, d.key): d.reason for d in result.dropped}


def test_the_reserved_keys_are_the_documented_ones() -> None:
    assert {
        "approved",
        "requester_role",
        "command_class",
        "tenant",
        "identity",
        "derived",
    } == RESERVED_KEYS


@pytest.mark.parametrize("key", sorted(RESERVED_KEYS))
def test_each_reserved_key_is_dropped_from_labels_and_meta(key: str) -> None:
    result = sanitise({key: "x", "env": "prod"}, {key: "x", "capability": "infra.read"})
    assert result.labels == {"env": "prod"}
    assert result.meta == {"capability": "infra.read"}
    assert reasons(result) == {("labels", key): "reserved_key", ("meta", key): "reserved_key"}


@pytest.mark.parametrize(
    "key",
    [
        "Approved",
        "COMMAND_CLASS",
        " tenant ",
        "appro\u200bved",  # zero-width space inside
        "\uff41\uff50\uff50\uff52\uff4f\uff56\uff45\uff44",  # fullwidth "approved"
        "Requester_Role",
    ],
)
def test_reserved_keys_are_matched_case_insensitively_and_after_cleaning(key: str) -> None:
    result = sanitise({key: "yes"}, {key: True})
    assert result.labels == {}
    assert result.meta == {}
    assert reasons(result) == {("labels", key): "reserved_key", ("meta", key): "reserved_key"}


@pytest.mark.parametrize("key", ["gatehouse.snapshot", "Gatehouse_internal", "GATEHOUSE.x.y"])
def test_reserved_prefixes_are_dropped(key: str) -> None:
    result = sanitise({key: "v"}, {key: "v"})
    assert (result.labels, result.meta) == ({}, {})
    assert reasons(result) == {("labels", key): "reserved_prefix", ("meta", key): "reserved_prefix"}


def test_a_key_that_merely_contains_gatehouse_is_kept() -> None:
    assert sanitise({"my_gatehouse.x": "v"}, None).labels == {"my_gatehouse.x": "v"}


def test_callers_can_reserve_more_keys_for_one_call() -> None:
    result = sanitise({"env": "prod", "Team": "a"}, {"source": "ci"}, reserved=["ENV", "source"])
    assert result.labels == {"Team": "a"}
    assert result.meta == {}
    assert reasons(result) == {
        ("labels", "env"): "reserved_key",
        ("meta", "source"): "reserved_key",
    }
    # The module constant is not changed by a call.
    assert "env" not in RESERVED_KEYS
    assert sanitise({"env": "prod"}, None).labels == {"env": "prod"}


@pytest.mark.parametrize("key", sorted(META_KEYS))
def test_each_allowed_meta_key_is_kept_with_its_value_untouched(key: str) -> None:
    value: Any = ["change", "prod"] if key == "risk_tags" else "v\u200b"
    result = sanitise(None, {key: value})
    assert result.meta == {key: value}
    assert result.meta[key] is value
    assert result.dropped == ()


@pytest.mark.parametrize("key", ["labels", "priority", "Capability", "topic", "risk_tag"])
def test_meta_outside_the_allow_list_is_dropped(key: str) -> None:
    result = sanitise(None, {key: 1, "capability": "infra.read"})
    assert result.meta == {"capability": "infra.read"}
    assert result.dropped == (Dropped("meta", key, "unknown_meta_key"),)


def test_label_values_are_cleaned() -> None:
    result = sanitise(
        {"env": "pro\u200bd", "team": "\uff50\uff4c\uff41\uff54", "note": "a\x00b\x1b[31m\r\n\tc"},
        None,
    )
    assert result.labels == {"env": "prod", "team": "plat", "note": "ab[31m\n\tc"}
    assert result.dropped == ()  # normalising is not dropping


def test_label_keys_are_cleaned_and_collisions_keep_the_first() -> None:
    result = sanitise({"env\u200b": "a", "env": "b"}, None)
    assert result.labels == {"env": "a"}
    assert result.dropped == (Dropped("labels", "env", "duplicate_key"),)


def test_malformed_entries_are_dropped_not_passed_through() -> None:
    result = sanitise({"n": 3, 7: "x", "\u200b": "y"}, {1: "x"})  # type: ignore[dict-item]
    assert result.labels == {}
    assert reasons(result) == {
        ("labels", "n"): "non_string_value",
        ("labels", "7"): "invalid_key",
        ("labels", "\u200b"): "empty_key",
        ("meta", "1"): "invalid_key",
    }


def test_none_and_empty_inputs() -> None:
    assert sanitise(None, None) == Sanitised(labels={}, meta={}, dropped=())
    assert sanitise({}, {}) == Sanitised(labels={}, meta={}, dropped=())


def test_inputs_are_not_modified() -> None:
    labels = {"approved": "yes", "env": "prod\u200b"}
    meta = {"approved": True, "extra": 1}
    sanitise(labels, meta)
    assert labels == {"approved": "yes", "env": "prod\u200b"}
    assert meta == {"approved": True, "extra": 1}


def test_dropped_records_are_in_input_order_and_serialisable() -> None:
    result = sanitise({"tenant": "t", "approved": "y"}, {"x": 1})
    assert [d.to_dict() for d in result.dropped] == [
        {"field": "labels", "key": "tenant", "reason": "reserved_key"},
        {"field": "labels", "key": "approved", "reason": "reserved_key"},
        {"field": "meta", "key": "x", "reason": "unknown_meta_key"},
    ]


# Keys built from reserved words in disguise, prefixes and ordinary text.
_DISGUISES = st.sampled_from(["", " ", "\u200b", "\u202e", "\ufeff", "\x00"])


def _disguise(word: str, pre: str, mid: str, post: str, upper: bool) -> str:
    word = word.upper() if upper else word
    return pre + word[:2] + mid + word[2:] + post


_RESERVED_SPELLINGS = st.builds(
    _disguise,
    st.sampled_from([*sorted(RESERVED_KEYS), "gatehouse.x", "gatehouse_y"]),
    _DISGUISES,
    _DISGUISES,
    _DISGUISES,
    st.booleans(),
)
_KEYS = st.one_of(_RESERVED_SPELLINGS, st.sampled_from(sorted(META_KEYS)), st.text(max_size=12))


@given(st.dictionaries(_KEYS, st.text(max_size=8)), st.dictionaries(_KEYS, st.integers()))
def test_no_reserved_key_survives_in_any_spelling(labels: dict[str, str], meta: dict[str, int]) -> None:
    result = sanitise(labels, meta)
    for key in [*result.labels, *result.meta]:
        folded = key.strip().casefold()
        assert folded not in RESERVED_KEYS
        assert not folded.startswith(("gatehouse.", "gatehouse_"))
    assert set(result.meta) <= META_KEYS
    # Every input key is either kept or reported.
    assert len(result.labels) + len(result.meta) + len(result.dropped) == len(labels) + len(meta)

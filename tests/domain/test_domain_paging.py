"""Keyset pages over (created_at, id): every row once, in order, whatever the page size, ties
and rows added between pages; a cursor that is not one of ours is `invalid_cursor`."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatehouse.domain.paging import decode_keyset_cursor, encode_keyset_cursor, keyset_page
from gatehouse.errors import BadRequest
from gatehouse.store._cursor import encode_cursor


@dataclass(frozen=True)
class Row:
    id: str
    created_at: float


def key(r: Row) -> tuple[float, str]:
    return r.created_at, r.id


def walk(rows: list[Row], limit: int) -> tuple[list[Row], int]:
    seen: list[Row] = []
    cursor = None
    pages = 0
    while True:
        page = keyset_page(rows, key=key, limit=limit, cursor=cursor)
        pages += 1
        assert len(page.items) <= limit
        seen += page.items
        cursor = page.next_cursor
        if cursor is None:
            return seen, pages


@given(
    st.lists(
        st.tuples(
            st.sampled_from([0.0, 1.5, 1.5000000000000002, 1e9, 1717171717.123456]), st.integers(0, 99)
        ),
        unique=True,
        max_size=40,
    ),
    st.integers(1, 7),
)
def test_walking_every_page_yields_every_row_once_in_order(raw: list[tuple[float, int]], limit: int) -> None:
    rows = [Row(f"idn_{n:03d}", t) for t, n in raw]
    seen, pages = walk(rows, limit)
    assert seen == sorted(rows, key=key)
    assert pages == max(1, -(-len(rows) // limit))  # no empty last page


def test_rows_added_or_removed_between_pages_neither_repeat_nor_hide_others() -> None:
    rows = [Row(f"inc_{n}", 100.0 + n) for n in range(6)]
    first = keyset_page(rows, key=key, limit=3)
    assert [r.id for r in first.items] == ["inc_0", "inc_1", "inc_2"]
    # inc_1 is removed and inc_9 (newest) added before the second page is read.
    later = [r for r in rows if r.id != "inc_1"] + [Row("inc_9", 200.0)]
    second = keyset_page(later, key=key, limit=3, cursor=first.next_cursor)
    assert [r.id for r in second.items] == ["inc_3", "inc_4", "inc_5"]
    third = keyset_page(later, key=key, limit=3, cursor=second.next_cursor)
    assert [r.id for r in third.items] == ["inc_9"] and third.next_cursor is None


def test_a_cursor_round_trips_exactly() -> None:
    for k in [(0.0, "a"), (1717171717.1234567, "idn_x"), (1e-300, "inc_|pipe")]:
        assert decode_keyset_cursor(encode_keyset_cursor(k)) == k


def _b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "!!",
        "",
        _b64("nope"),
        encode_cursor(12),  # a store's `s<seq>` cursor: another listing's
        _b64("k1.0"),  # no id
        _b64("k|idn_x"),  # no time
        _b64("knan|idn_x"),
        _b64("kinf|idn_x"),
        _b64("k1e999|idn_x"),
        _b64("k²|idn_x"),
        _b64("k1.0|" + "x" * 200),
        _b64("k1.0|idn\nx"),
        base64.urlsafe_b64encode(b"k1.0|\xff\xfe").decode(),
    ],
)
def test_a_cursor_that_is_not_ours_is_invalid_cursor(cursor: str) -> None:
    with pytest.raises(BadRequest) as raised:
        keyset_page([Row("a", 1.0)], key=key, limit=1, cursor=cursor or "=")
    assert raised.value.code == "invalid_cursor"


def test_a_limit_below_one_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        keyset_page([], key=key, limit=0)

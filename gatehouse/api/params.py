"""Query parameters that need more than a type: checked at the edge so an odd value is a 400
with a code, never an overflow deep in a store driver (a 500).

A sequence number, a cursor or a serial is a signed 64-bit integer wherever it is stored, and
Python's `str.isdigit` and `int` accept more than ASCII digits (`²` is a digit to `isdigit` but
not to `int`; `١٢` is to both).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from gatehouse.audit.events import parse_since
from gatehouse.errors import BadRequest

__all__ = ["MAX_INT64", "Cursor", "PageLimit", "since_param"]

MAX_INT64 = 2**63 - 1
# Long enough for any RFC 3339 time, and short enough that a time ago in weeks stays a float.
_MAX_SINCE_CHARS = 64


# Every listing pages the same way: `limit` rows (1..500), then the answer's `next_cursor` as
# `cursor` for the next page, until it is null. The cursor is opaque; one the listing did not
# write is a 422 `invalid_cursor` (too long: refused here, before any decoding).
PageLimit = Annotated[int, Query(ge=1, le=500, description="rows per page, 1 to 500")]
Cursor = Annotated[
    str | None,
    Query(max_length=512, description="the `next_cursor` of the previous page; omit for the first"),
]


def since_param(since: str | None) -> tuple[int, float | None]:
    """`parse_since` over a `since` that is ASCII, short, and a sequence number within 64 bits."""
    if since and (not since.isascii() or len(since) > _MAX_SINCE_CHARS):
        raise BadRequest(
            "`since` must be a sequence number, an RFC 3339 time or a time ago such as `1h` "
            f"(ASCII, at most {_MAX_SINCE_CHARS} characters)",
            code="invalid_since",
        )
    try:
        seq, ts = parse_since(since)
    except (ValueError, OverflowError):
        raise BadRequest("`since` is out of range", code="invalid_since") from None
    if seq > MAX_INT64:
        raise BadRequest(f"`since` is larger than {MAX_INT64}", code="invalid_since")
    return seq, ts

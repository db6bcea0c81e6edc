"""Opaque page cursors: a store's `next_cursor` names the position of the last row it returned.

A cursor is `s<seq>` in URL-safe base64 without padding: clients must treat it as opaque, and
every driver orders pages by a monotonic sequence, so the same encoding serves them all. Anything
that does not decode is the caller's mistake: `BadRequest(code="invalid_cursor")` (a 400).
"""

from __future__ import annotations

import base64

from gatehouse.errors import BadRequest

__all__ = ["decode_cursor", "encode_cursor"]


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"s{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not raw.startswith("s"):
            raise ValueError(cursor)
        return int(raw[1:])
    except (ValueError, UnicodeDecodeError):
        raise BadRequest(f"bad cursor `{cursor}`", code="invalid_cursor") from None

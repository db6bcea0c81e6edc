"""Opaque page cursors: a store's `next_cursor` names the position of the last row it returned.

A cursor is `s<seq>` in URL-safe base64 without padding: clients must treat it as opaque, and
every driver orders pages by a monotonic sequence, so the same encoding serves them all. Anything
that does not decode is the caller's mistake: `BadRequest(code="invalid_cursor")` (a 400).
"""

from __future__ import annotations

import base64

from gatehouse.errors import BadRequest

__all__ = ["decode_cursor", "encode_cursor"]

_MAX_SEQ = 2**63 - 1


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"s{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        digits = raw[1:]
        # Sequences are signed 64-bit integers in every store: a larger one would overflow in
        # the driver (a 500), and `int` accepts more than ASCII digits.
        if not raw.startswith("s") or not (digits.isascii() and digits.isdigit()) or len(digits) > 19:
            raise ValueError(cursor)
        seq = int(digits)
        if seq > _MAX_SEQ:
            raise ValueError(cursor)
        return seq
    except (ValueError, UnicodeDecodeError):
        raise BadRequest(f"bad cursor `{cursor}`", code="invalid_cursor") from None

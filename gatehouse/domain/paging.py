"""Keyset pages over small lists ordered by (created_at, id): identities and containments.

These tables stay small (a team's keys, the kill switches of its incidents), and who may see
which row is decided in the control layer after the store's read, so the page is cut there, from
the visible rows, by this pure helper. The key (created_at, id) is unique and never changes, so
a row written or removed between two pages neither repeats nor hides another row.

A cursor is `k<created_at>|<id>` in URL-safe base64 without padding: opaque to clients, and
distinct from a store's `s<seq>` cursors, so a cursor of one listing handed to another is a
`BadRequest(code="invalid_cursor")` (a 422), never a silently wrong page.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from gatehouse.errors import BadRequest

__all__ = ["KeysetPage", "decode_keyset_cursor", "encode_keyset_cursor", "keyset_page"]

T = TypeVar("T")
Key = tuple[float, str]

_MAX_ID = 128  # ids are `idn_...`/`inc_...`: far shorter; a longer one is no cursor of ours


@dataclass(frozen=True, slots=True)
class KeysetPage(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_keyset_cursor(key: Key) -> str:
    created_at, ident = key
    # repr() of a float reads back exactly: the next page starts right after this row.
    raw = f"k{created_at!r}|{ident}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_keyset_cursor(cursor: str) -> Key:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, sep, ident = raw[1:].partition("|")
        if not raw.startswith("k") or not sep or not ident or len(ident) > _MAX_ID:
            raise ValueError(cursor)
        if not (when.isascii() and ident.isascii() and ident.isprintable()):
            raise ValueError(cursor)
        created_at = float(when)
        if not math.isfinite(created_at):
            raise ValueError(cursor)
        return created_at, ident
    except (ValueError, UnicodeDecodeError):
        raise BadRequest(f"bad cursor `{cursor[:80]}`", code="invalid_cursor") from None


def keyset_page(
    items: Iterable[T], *, key: Callable[[T], Key], limit: int, cursor: str | None = None
) -> KeysetPage[T]:
    """The `limit` items after `cursor` in (created_at, id) order, and the cursor of the next
    page (None when this one is the last)."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    after = decode_keyset_cursor(cursor) if cursor else None
    ordered = sorted(items, key=key)
    if after is not None:
        ordered = [i for i in ordered if key(i) > after]
    page = ordered[:limit]
    next_cursor = encode_keyset_cursor(key(page[-1])) if len(ordered) > limit else None
    return KeysetPage(items=page, next_cursor=next_cursor)

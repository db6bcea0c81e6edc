"""Ids and clocks: the only places the domain reads the time or draws randomness."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime

__all__ = ["new_id", "now", "rfc3339"]


def now() -> float:
    return time.time()


def rfc3339(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_id(prefix: str) -> str:
    # Time-ordered prefix (ms, hex) + randomness: ids sort by creation and never collide.
    return f"{prefix}_{int(time.time() * 1000):011x}{secrets.token_hex(8)}"

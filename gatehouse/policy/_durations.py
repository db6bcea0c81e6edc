"""Durations such as `15m`, `2h`, `30d` (used by `approval_ttl` and bundle expiry)."""

from __future__ import annotations

import re

__all__ = ["parse_duration"]

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str | int) -> int:
    """Seconds in `text`; a bare integer means seconds. Raises ValueError when malformed."""
    if isinstance(text, bool):
        raise ValueError("a duration is a number with a unit such as `15m`")
    if isinstance(text, int):
        if text <= 0:
            raise ValueError("a duration must be positive")
        return text
    if not isinstance(text, str):  # YAML hands over floats and nulls too
        raise ValueError(f"bad duration `{text}` (use a number with s, m, h, d or w, such as `15m`)")
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"bad duration `{text}` (use a number with s, m, h, d or w, such as `15m`)")
    seconds = int(m.group(1)) * _UNIT[m.group(2)]
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    return seconds

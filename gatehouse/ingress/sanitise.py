"""Sanitising client-sent labels and meta before they reach the submit gate.

A policy may key on `command_class`, `approved` or `requester_role`; if a client could send those
itself it could talk its way past a rule ("this is only a read"). So every key that only the server
may set is dropped here, wherever the client puts it, and meta is an allow-list: the API flattens
meta into the request context, and an unknown meta key must never become a context field.

Keys are compared after `clean_text`, stripping and case folding, so `Approved`, ` approved`,
`appro<ZWSP>ved` and fullwidth spellings are all the reserved key `approved`. Label keys and values
that survive are normalised with `clean_text`; nothing is recorded for that, it only canonicalises.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gatehouse.ingress.text import clean_text

__all__ = [
    "META_KEYS",
    "RESERVED_KEYS",
    "RESERVED_PREFIXES",
    "Dropped",
    "Sanitised",
    "sanitise",
]

# Keys only the server sets (compared case-insensitively). Extend per call with `reserved=`.
RESERVED_KEYS: frozenset[str] = frozenset(
    {"approved", "requester_role", "command_class", "tenant", "identity", "derived"}
)

# Namespaces the server keeps for itself, e.g. `gatehouse.snapshot`, `gatehouse_internal`.
RESERVED_PREFIXES: tuple[str, ...] = ("gatehouse.", "gatehouse_")

# The only meta keys a client may send; their values are typed by the API schema, not here.
META_KEYS: frozenset[str] = frozenset(
    {"capability", "risk_tags", "source", "trace_id", "session_id", "description"}
)


@dataclass(frozen=True)
class Dropped:
    """One key removed from the request, and why (a snake_case code)."""

    field: str  # "labels" | "meta"
    key: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "key": self.key, "reason": self.reason}


@dataclass(frozen=True)
class Sanitised:
    """Labels and meta with server-only and unknown keys removed."""

    labels: dict[str, str]
    meta: dict[str, Any]
    dropped: tuple[Dropped, ...]


def sanitise(
    labels: Mapping[str, Any] | None,
    meta: Mapping[str, Any] | None,
    *,
    reserved: Iterable[str] = (),
) -> Sanitised:
    """Drop reserved keys from `labels` and `meta`, and unknown keys from `meta`.

    `reserved` adds keys to `RESERVED_KEYS` for this call. Dropping, not rejecting, keeps old
    clients working; the `dropped` list lets the API tell the caller what was ignored.
    """
    reserved_keys = RESERVED_KEYS | {_fold(k) for k in reserved}
    dropped: list[Dropped] = []

    clean_labels: dict[str, str] = {}
    for key, value in (labels or {}).items():
        reason = _key_problem(key, reserved_keys)
        if reason is None and not isinstance(value, str):
            # The API validates label values; a non-string here must not reach a str -> str map.
            reason = "non_string_value"
        if reason is None:
            name = clean_text(key).strip()
            if not name:
                reason = "empty_key"
            elif name in clean_labels:
                # Two keys that differ only by invisible characters: keep the first, not a mix.
                reason = "duplicate_key"
            else:
                clean_labels[name] = clean_text(value)
                continue
        dropped.append(Dropped("labels", _show(key), reason))

    clean_meta: dict[str, Any] = {}
    for key, value in (meta or {}).items():
        reason = _key_problem(key, reserved_keys)
        if reason is None:
            name = clean_text(key).strip()
            if name not in META_KEYS:
                reason = "unknown_meta_key"
            elif name in clean_meta:
                reason = "duplicate_key"
            else:
                clean_meta[name] = value
                continue
        dropped.append(Dropped("meta", _show(key), reason))

    return Sanitised(labels=clean_labels, meta=clean_meta, dropped=tuple(dropped))


def _fold(key: str) -> str:
    return clean_text(key).strip().casefold()


def _key_problem(key: object, reserved_keys: frozenset[str]) -> str | None:
    if not isinstance(key, str):
        return "invalid_key"
    folded = _fold(key)
    if folded in reserved_keys:
        return "reserved_key"
    if folded.startswith(RESERVED_PREFIXES):
        return "reserved_prefix"
    return None


def _show(key: object) -> str:
    return key if isinstance(key, str) else repr(key)

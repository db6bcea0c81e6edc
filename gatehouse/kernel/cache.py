"""A bounded decision cache in front of `Policy.decide`.

The key is the policy snapshot plus only the context fields the policy reads (`Policy.fields`,
each read as the engine reads it: `labels.env`, `params.a.b`), so prompts, job ids and labels no
rule looks at cannot defeat it, and an entry can never answer for another snapshot. Values are
keyed with their type where the engine tells types apart (`approved: 1` is not `true`, a
parameter `1` is not `"1"`): two contexts share an entry only if every rule sees them alike.
Installing a bundle clears it at once anyway. Fail-mode verdicts are never stored: they
describe the kernel's health, not the policy.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from gatehouse.policy import Decision, Policy
from gatehouse.policy.compiler import ABSENT, field_getter

__all__ = ["DecisionCache", "cache_key"]

_SEQ = (list, tuple, set, frozenset)


def _text(value: Any) -> str:
    """A canonical text of any JSON-like value in which `1`, `"1"` and `true` differ."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=repr)


def _freeze(value: Any) -> Hashable:
    if type(value) is str or value is None or value is ABSENT:
        # Absent and null are alike to every rule (`exists` is false for both).
        return None if value is ABSENT else value
    if isinstance(value, bool | int | float):
        # Hashing alone would make `True`, `1` and `1.0` one key; a rule tells them apart.
        return (type(value).__name__, value)
    if isinstance(value, _SEQ):
        # Set-like: a list matches when any item does, whatever the order.
        return ("seq", tuple(sorted(map(_text, value))))
    return ("json", _text(value))


def cache_key(policy: Policy, fields: tuple[str, ...], ctx: Mapping[str, Any]) -> Hashable:
    parts: list[Hashable] = [policy.snapshot]
    for f in fields:
        parts.append(_freeze(field_getter(f)(ctx)))
    return tuple(parts)


class DecisionCache:
    def __init__(
        self,
        *,
        max_entries: int = 10_000,
        ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        self.max_entries = max_entries
        self.ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[Hashable, tuple[float, Decision]] = OrderedDict()
        self._on_event = on_event or (lambda event: None)
        self._fields: dict[str, tuple[str, ...]] = {}
        self.hits = self.misses = self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()
        self._fields.clear()

    def key(self, policy: Policy, ctx: Mapping[str, Any]) -> Hashable:
        fields = self._fields.get(policy.snapshot)
        if fields is None:
            fields = self._fields[policy.snapshot] = tuple(sorted(policy.fields))
        return cache_key(policy, fields, ctx)

    def get(self, key: Hashable) -> Decision | None:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            self._on_event("miss")
            return None
        stored_at, decision = entry
        if self._clock() - stored_at > self.ttl:
            del self._entries[key]
            self.misses += 1
            self._on_event("miss")
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        self._on_event("hit")
        return decision

    def put(self, key: Hashable, decision: Decision) -> None:
        self._entries[key] = (self._clock(), decision)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
            self.evictions += 1
            self._on_event("eviction")

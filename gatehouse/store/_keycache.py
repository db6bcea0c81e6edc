"""A short-lived cache of API key lookups, for drivers whose lookup costs a query.

Authentication looks the key up on every request. Revoking through the same store drops the
identity's entries at once (`forget`); the short TTL bounds how stale a key revoked by another
process can be. Unknown keys are never cached, so a flood of them cannot evict real ones, and a
full cache is simply emptied (cheaper than tracking recency on the hot path).
"""

from __future__ import annotations

import time

from gatehouse.domain.identity import Identity

__all__ = ["KeyCache"]


class KeyCache:
    def __init__(self, *, size: int = 10_000, ttl: float = 2.0) -> None:
        self.size = size
        self.ttl = ttl
        self._entries: dict[str, tuple[float, Identity]] = {}

    def get(self, key_hash: str) -> Identity | None:
        cached = self._entries.get(key_hash)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        return None

    def put(self, key_hash: str, identity: Identity) -> None:
        if len(self._entries) >= self.size:
            self._entries.clear()
        self._entries[key_hash] = (time.monotonic() + self.ttl, identity)

    def forget(self, identity_id: str) -> None:
        self._entries = {h: v for h, v in self._entries.items() if v[1].id != identity_id}

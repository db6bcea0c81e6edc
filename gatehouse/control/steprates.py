"""Per-session rate limits of cataloged adapters (`rate_limit: RATE/BURST` in the catalog).

A token bucket per (tenant, session, adapter), held in this process: `burst` steps at once, then
`rate` a second. A step over it is denied by the step gate with rule `rate_limit` (a check before
the policy, recorded like any decision). Buckets of idle sessions are forgotten oldest first past
`capacity`; a forgotten bucket starts full again, which only ever errs by one burst.

In-process on purpose: the limit guards one agent session against a runaway loop, not a tenant's
quota across replicas (the API's per-identity limit does that).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from gatehouse.policy.catalog import RateLimit

__all__ = ["SessionRates"]


class SessionRates:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic, capacity: int = 65536) -> None:
        self._clock = clock
        self._capacity = capacity
        # key -> (tokens, last refill time)
        self._buckets: OrderedDict[tuple[str, str, str], tuple[float, float]] = OrderedDict()

    def take(self, tenant: str, session_id: str, adapter: str, limit: RateLimit) -> bool:
        """Spend one token of the session's bucket for `adapter`; False when it is empty."""
        key = (tenant, session_id, adapter.lower())
        now = self._clock()
        tokens, last = self._buckets.pop(key, (float(limit.burst), now))
        # The limit may have changed with the bundle: refill at today's rate, up to today's burst.
        tokens = min(float(limit.burst), tokens + (now - last) * limit.rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self._capacity:
            self._buckets.popitem(last=False)
        return allowed

"""Token buckets per identity and per tenant, checked right after authentication.

A flood from one agent drains only its own bucket (and, past that, its tenant's): it gets 429s
that cost a dictionary lookup each, while other identities and tenants keep their own budgets.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from gatehouse.errors import BadRequest, RateLimited

__all__ = ["Limit", "RateLimiter", "TokenBucket", "parse_limit"]


@dataclass(frozen=True, slots=True)
class Limit:
    rate: float  # tokens per second; 0 means unlimited
    burst: float

    @property
    def unlimited(self) -> bool:
        return self.rate <= 0


def parse_limit(text: str) -> Limit:
    """`RATE` or `RATE/BURST` (per second); `0` disables the limit."""
    try:
        rate_s, _, burst_s = text.partition("/")
        rate = float(rate_s)
        burst = float(burst_s) if burst_s else max(rate * 2, 1.0)
    except ValueError:
        raise BadRequest(
            f"bad rate limit `{text}` (use RATE or RATE/BURST)", code="invalid_rate_limit"
        ) from None
    # `float` also reads `nan`, `inf` and `1e999`: no bucket can hold those.
    if not (math.isfinite(rate) and math.isfinite(burst)) or rate < 0 or (burst < 1 and rate > 0):
        raise BadRequest(f"bad rate limit `{text}`", code="invalid_rate_limit")
    return Limit(rate=rate, burst=burst)


class TokenBucket:
    __slots__ = ("_clock", "limit", "stamp", "tokens")

    def __init__(self, limit: Limit, clock: Callable[[], float]) -> None:
        self.limit = limit
        self.tokens = limit.burst
        self._clock = clock
        self.stamp = clock()

    def take(self) -> float:
        """0 when a token was taken, else the seconds until one is available."""
        now = self._clock()
        self.tokens = min(self.limit.burst, self.tokens + (now - self.stamp) * self.limit.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.limit.rate


class RateLimiter:
    def __init__(
        self,
        *,
        identity: Limit,
        tenant: Limit,
        clock: Callable[[], float] = time.monotonic,
        on_limited: Callable[[str], None] | None = None,
    ) -> None:
        self.identity_limit = identity
        self.tenant_limit = tenant
        self._clock = clock
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        # An identity's own limit, compiled once per distinct text (identities carry it as
        # written), so a request costs a dictionary lookup, not a parse.
        self._overrides: dict[str, Limit] = {}
        self._on_limited = on_limited or (lambda scope: None)

    def _bucket(self, scope: str, key: str, limit: Limit) -> TokenBucket:
        bucket = self._buckets.get((scope, key))
        if bucket is None or bucket.limit != limit:
            if len(self._buckets) > 100_000:  # revoked keys and old tenants: start over
                self._buckets.clear()
            bucket = self._buckets[(scope, key)] = TokenBucket(limit, self._clock)
        return bucket

    def _override(self, text: str) -> Limit:
        limit = self._overrides.get(text)
        if limit is None:
            if len(self._overrides) > 10_000:  # texts of identities long gone: start over
                self._overrides.clear()
            limit = self._overrides[text] = parse_limit(text)
        return limit

    def check(self, identity_id: str, tenant: str, override: str | None = None) -> None:
        """Raise `RateLimited` (with `retry_after`) when either bucket is empty. `override` is
        the identity's own `RATE/BURST`, if it has one."""
        limit = self._override(override) if override else self.identity_limit
        if not limit.unlimited:
            wait = self._bucket("identity", identity_id, limit).take()
            if wait:
                self._on_limited("identity")
                raise RateLimited(
                    f"identity rate limit of {limit.rate:g}/s exceeded",
                    retry_after=wait,
                    details={"scope": "identity", "retry_after": round(wait, 3)},
                )
        if not self.tenant_limit.unlimited:
            wait = self._bucket("tenant", tenant, self.tenant_limit).take()
            if wait:
                self._on_limited("tenant")
                raise RateLimited(
                    f"tenant rate limit of {self.tenant_limit.rate:g}/s exceeded",
                    retry_after=wait,
                    details={"scope": "tenant", "retry_after": round(wait, 3)},
                )

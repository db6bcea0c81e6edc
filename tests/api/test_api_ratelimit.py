"""An identity's own rate limit is compiled once, not parsed on every request."""

from __future__ import annotations

import pytest

from gatehouse.api import ratelimit
from gatehouse.api.ratelimit import RateLimiter, parse_limit
from gatehouse.errors import RateLimited


def test_an_override_is_parsed_once_and_enforced(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[str] = []

    def counting(text: str) -> ratelimit.Limit:
        parsed.append(text)
        return parse_limit(text)

    monkeypatch.setattr(ratelimit, "parse_limit", counting)
    clock = [0.0]
    limiter = RateLimiter(identity=parse_limit("100/100"), tenant=parse_limit("0"), clock=lambda: clock[0])
    limiter.check("idn_1", "t", "1/2")
    limiter.check("idn_1", "t", "1/2")
    with pytest.raises(RateLimited):
        limiter.check("idn_1", "t", "1/2")
    assert parsed == ["1/2"]
    limiter.check("idn_2", "t", None)  # no override: the server default
    assert parsed == ["1/2"]

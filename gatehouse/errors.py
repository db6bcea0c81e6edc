"""The one exception tree of Gatehouse.

    GatehouseError                 code: stable, machine-readable, snake_case
     +-- PolicyError               a bundle failed to parse or validate (line, rule_id)
     +-- BadRequest                the caller sent something malformed
     |    +-- MissingField         a job lacks a field the policy's `require` asks for
     +-- PayloadTooLarge           a body or field exceeds its size limit
     +-- NotFound                  no such object, or it belongs to another tenant
     +-- Conflict                  the object is in a state that forbids the request
     +-- Unauthorized / Forbidden  authentication / authorisation failures
     +-- Denied                    a gate denied the request (carries the decision)
     +-- RateLimited               too many requests (carries retry_after)
     +-- Upstream                  a service the broker called failed or misbehaved
     |    +-- UpstreamTimeout      it did not answer in time
     +-- Unavailable               the database (or another backend) cannot be reached now

Mapping to HTTP status codes and CLI exit codes happens only at the edges
(`gatehouse.api.errors`, `gatehouse.cli`). This module imports only the standard library
so that the pure core can raise these errors.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BadRequest",
    "Conflict",
    "Denied",
    "Forbidden",
    "GatehouseError",
    "MissingField",
    "NotFound",
    "PayloadTooLarge",
    "PolicyError",
    "RateLimited",
    "Unauthorized",
    "Unavailable",
    "Upstream",
    "UpstreamTimeout",
]


class GatehouseError(Exception):
    """Base of every error Gatehouse raises on purpose."""

    code: str = "gatehouse_error"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details: dict[str, Any] = dict(details or {})


class PolicyError(GatehouseError):
    """A policy bundle is invalid. Carries the 1-based line number and rule id when known."""

    code = "policy_invalid"

    def __init__(
        self,
        message: str,
        *,
        line: int | None = None,
        rule_id: str | None = None,
        code: str | None = None,
    ) -> None:
        prefix = []
        if line is not None:
            prefix.append(f"line {line}")
        if rule_id is not None:
            prefix.append(f"rule `{rule_id}`")
        full = f"{': '.join(prefix)}: {message}" if prefix else message
        details: dict[str, Any] = {}
        if line is not None:
            details["line"] = line
        if rule_id is not None:
            details["rule_id"] = rule_id
        super().__init__(full, code=code, details=details)
        self.line = line
        self.rule_id = rule_id
        self.reason = message


class BadRequest(GatehouseError):
    code = "bad_request"


class MissingField(BadRequest):
    """A job on a topic the policy's `require` covers lacks a required field (422).

    Raised before any decision: a rule cannot be dodged by leaving out the field it keys on.
    """

    code = "missing_field"

    def __init__(self, topic: str, fields: list[str]) -> None:
        names = ", ".join(f"`{f}`" for f in fields)
        noun = "field" if len(fields) == 1 else "fields"
        super().__init__(
            f"a job on topic `{topic}` must carry the {noun} {names}",
            details={"topic": topic, "fields": list(fields)},
        )
        self.topic = topic
        self.fields = list(fields)


class PayloadTooLarge(GatehouseError):
    code = "payload_too_large"


class Unauthorized(GatehouseError):
    code = "unauthorized"


class Forbidden(GatehouseError):
    code = "forbidden"


class NotFound(GatehouseError):
    code = "not_found"


class Conflict(GatehouseError):
    code = "conflict"


class Denied(GatehouseError):
    """A gate said no. `details["decision"]` carries the decision record."""

    code = "denied"


class RateLimited(GatehouseError):
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float, details: Any = None) -> None:
        super().__init__(message, details=details)
        self.retry_after = retry_after


class Upstream(GatehouseError):
    """A service the broker called on an agent's behalf could not be reached, or answered
    something the broker will not pass on (too large)."""

    code = "upstream_error"


class UpstreamTimeout(Upstream):
    code = "upstream_timeout"


class Unavailable(GatehouseError):
    """A backend the server needs (the database) cannot be reached; retrying later may work."""

    code = "store_unavailable"

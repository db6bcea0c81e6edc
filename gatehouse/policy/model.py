"""The validated, frozen policy model.

The loader turns YAML/JSON text into these values; the compiler indexes them. Nothing here does
I/O. Decisions are ranked `deny` > `require_approval` > `allow` ("most restrictive wins").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "ALLOW",
    "CONTEXT_FIELDS",
    "DECISIONS",
    "DENY",
    "DETECTORS",
    "OUTPUT_DECISIONS",
    "REQUIRE_APPROVAL",
    "STEP_FIELDS",
    "Condition",
    "Decision",
    "Explanation",
    "FailModeOverride",
    "Match",
    "OutputRule",
    "Remediation",
    "Requirement",
    "Rule",
    "RuleTrace",
    "severity",
]

ALLOW = "allow"
DENY = "deny"
REQUIRE_APPROVAL = "require_approval"
DECISIONS = (ALLOW, DENY, REQUIRE_APPROVAL)
OUTPUT_DECISIONS = ("allow", "redact", "quarantine")
FAIL_MODES = ("closed", "open")

# Lower is more restrictive; used to rank candidate rules.
_SEVERITY = {DENY: 0, REQUIRE_APPROVAL: 1, ALLOW: 2}

# The flat request context the engine reads (DESIGN.md section 3). `labels.<key>` addresses one
# label. Conditions may name only these, so a misspelt operator is an error, not a silent field.
CONTEXT_FIELDS = (
    "topic",
    "tenant",
    "labels",
    "capability",
    "risk_tags",
    "requester_role",
    "approved",
)

# Fields only a step (a proposed tool call, DESIGN.md section 9) carries, besides the job fields
# above. `params.<path>` and `session.<name>` address into the step's params and its session.
STEP_FIELDS = ("target", "adapter", "action", "effect", "detected")

# Output detectors a bundle may name; `gatehouse.output` implements them.
DETECTORS = (
    "private_key",
    "aws_access_key",
    "aws_secret_key",
    "github_token",
    "slack_token",
    "jwt",
    "generic_api_key",
    "password",
    "email",
    "credit_card",
    "phone",
    "ssn",
    "iban",
    "ip_address",
)

DecisionName = Literal["allow", "deny", "require_approval"]


def severity(decision: str) -> int:
    """Rank of a decision: 0 is the most restrictive."""
    return _SEVERITY[decision]


@dataclass(frozen=True, slots=True)
class Condition:
    """One node of a condition tree.

    `op` is `eq`, `in`, `not_in` (with `field` and `value`), `exists` (with `field` only: the
    field is present and not null), or `not`, `all`, `any` (with `children`).
    """

    op: str
    field: str = ""
    value: Any = None
    children: tuple[Condition, ...] = ()

    def to_data(self) -> Any:
        if self.op == "not":
            return {"not": self.children[0].to_data()}
        if self.op in ("all", "any"):
            return {self.op: [c.to_data() for c in self.children]}
        if self.op == "exists":
            return {"exists": self.field}
        value = list(self.value) if isinstance(self.value, tuple) else self.value
        return {self.op: {self.field: value}}


@dataclass(frozen=True, slots=True)
class Match:
    """Every field given must match; an empty tuple/mapping means "any".

    A rule whose match names `targets` (globs over `adapter:<adapter>:<action>`) is a *step*
    rule: it is evaluated only for tool calls, and a rule without targets only for jobs.
    """

    topics: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    labels: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    capabilities: tuple[str, ...] = ()
    tenants: tuple[str, ...] = ()
    risk_tags: tuple[str, ...] = ()
    requester_roles: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Remediation:
    id: str
    description: str = ""
    set: Mapping[str, Any] = field(default_factory=dict)
    set_labels: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "description": self.description,
            "set": dict(self.set),
            "set_labels": dict(self.set_labels),
        }


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    decision: str
    reason: str
    match: Match
    conditions: tuple[Condition, ...] = ()
    remediations: tuple[Remediation, ...] = ()
    approval_ttl: int | None = None  # seconds
    audit: bool = True
    description: str = ""
    line: int | None = None

    @property
    def is_step(self) -> bool:
        """A step rule (it names targets) decides tool calls; any other rule decides jobs."""
        return bool(self.match.targets)


@dataclass(frozen=True, slots=True)
class Requirement:
    """Fields a job on one of `topics` must carry (`meta.capability`, `labels.env`, `prompt`)."""

    topics: tuple[str, ...]
    fields: tuple[str, ...]
    line: int | None = None


@dataclass(frozen=True, slots=True)
class OutputRule:
    id: str
    detectors: tuple[str, ...]
    decision: str
    reason: str = ""
    topics: tuple[str, ...] = ()
    line: int | None = None


@dataclass(frozen=True, slots=True)
class FailModeOverride:
    topics: tuple[str, ...]
    fail_mode: str


@dataclass(frozen=True, slots=True)
class Decision:
    """The engine's answer. Decision *records* (ids, timestamps, stage) are the service's job."""

    decision: str
    rule_id: str
    reason: str
    remediations: tuple[Remediation, ...] = ()
    approval_ttl: int | None = None
    audit: bool = True

    @property
    def allowed(self) -> bool:
        return self.decision == ALLOW

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "rule_id": self.rule_id,
            "reason": self.reason,
            "remediations": [r.to_dict() for r in self.remediations],
            "approval_ttl": self.approval_ttl,
        }


@dataclass(frozen=True, slots=True)
class RuleTrace:
    """How one rule fared against a context: matched, or the first field that failed."""

    rule_id: str
    decision: str
    matched: bool
    failed_field: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "decision": self.decision,
            "matched": self.matched,
            "failed_field": self.failed_field,
        }


@dataclass(frozen=True, slots=True)
class Explanation:
    decision: Decision
    rules: tuple[RuleTrace, ...]
    winner: str
    why: str
    snapshot: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision.to_dict(),
            "winner": self.winner,
            "why": self.why,
            "policy_snapshot": self.snapshot,
            "rules": [t.to_dict() for t in self.rules],
        }

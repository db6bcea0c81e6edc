"""The validated, frozen policy model.

The loader turns YAML/JSON text into these values; the compiler indexes them. Nothing here does
I/O. Decisions are ranked `deny` > `require_approval` > `allow` ("most restrictive wins").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ALLOW",
    "CONTEXTS",
    "DECISIONS",
    "DENY",
    "DETECTORS",
    "JOB_CONTEXT",
    "LEAF_OPS",
    "OUTPUT_DECISIONS",
    "REQUIRE_APPROVAL",
    "SECRET_DETECTORS",
    "STEP_CONTEXT",
    "STEP_DETECTORS",
    "TREE_OPS",
    "Condition",
    "ContextSchema",
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

# A label key (`labels.<key>`: the whole rest is one key, dots and slashes included) and a path
# into a nested mapping (`params.a.b`: one key per segment).
LABEL_KEY = re.compile(r"[A-Za-z0-9_.\-/]{1,128}")
_PATH = re.compile(r"[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)*")


@dataclass(frozen=True, slots=True)
class ContextSchema:
    """The context fields the rules of one stage may compare (DESIGN.md sections 3 and 9).

    `fields` are read whole (`tenant`); each root in `keyed` addresses one key of a mapping
    (`labels.<key>`), each in `nested` a path through nested mappings (`params.a.b`). `sets`
    are the fields whose value is usually a list, any item of which may match (`risk_tags`):
    the compiler prefers the others as index keys, since a list fans a lookup out. The loader
    refuses a condition on a field the schema does not declare, so a misspelt operator or field
    is an error with its line, not a field that is never present.
    """

    stage: str
    fields: tuple[str, ...]
    keyed: tuple[str, ...] = ()
    nested: tuple[str, ...] = ()
    sets: frozenset[str] = frozenset()

    def declares(self, name: str) -> bool:
        """True when a rule of this stage may compare the field `name`."""
        if name in self.fields:
            return True
        root, dot, rest = name.partition(".")
        if not dot:
            return False
        if root in self.keyed:
            return LABEL_KEY.fullmatch(rest) is not None
        return root in self.nested and _PATH.fullmatch(rest) is not None

    def describe(self) -> str:
        """The declared fields as an error message lists them."""
        return ", ".join(
            (
                *self.fields,
                *(f"{root}.<key>" for root in self.keyed),
                *(f"{root}.<path>" for root in self.nested),
            )
        )


_JOB_FIELDS = ("topic", "tenant", "capability", "risk_tags", "requester_role", "approved")

# A job (DESIGN.md section 3): the flat context the API builds from a job.
JOB_CONTEXT = ContextSchema(
    stage="job",
    fields=_JOB_FIELDS,
    keyed=("labels",),
    sets=frozenset({"risk_tags", "requester_role"}),
)

# A step, a proposed tool call (DESIGN.md section 9): the job's fields, the call (`target` is
# `adapter:<adapter>:<action>`, `params` its arguments), what the catalog and the detectors say
# of it (`effect`, `detected`) and the session's history (`session.step_count`, ...).
STEP_CONTEXT = ContextSchema(
    stage="step",
    fields=(
        *_JOB_FIELDS,
        "target",
        "adapter",
        "action",
        "effect",
        "detected",
        "session.untrusted_read",
        "session.step_count",
        "session.denied_count",
    ),
    keyed=("labels",),
    nested=("params",),
    sets=frozenset({"risk_tags", "requester_role", "detected"}),
)

CONTEXTS: Mapping[str, ContextSchema] = {"job": JOB_CONTEXT, "step": STEP_CONTEXT}

# The output detectors that find a credential (a finding in a step's params: one is leaving).
SECRET_DETECTORS = (
    "private_key",
    "aws_access_key",
    "aws_secret_key",
    "github_token",
    "slack_token",
    "jwt",
    "generic_api_key",
    "password",
)
# Output detectors a bundle may name; `gatehouse.output` implements them.
DETECTORS = (
    *SECRET_DETECTORS,
    "email",
    "credit_card",
    "phone",
    "ssn",
    "iban",
    "ip_address",
    "url",
)
# What `detects` and `detected` may name (DESIGN.md section 9): every output detector.
STEP_DETECTORS = DETECTORS

# Condition operators (DESIGN.md sections 3 and 9), by the shape of their value.
TREE_OPS = ("not", "all", "any")
LEAF_OPS = (
    "eq",
    "in",
    "not_in",
    "exists",
    "gt",
    "gte",
    "lt",
    "lte",
    "len_gt",
    "len_lt",
    "matches",
    "glob",
    "contains",
    "in_set",
    "not_in_set",
    "domain_in",
    "not_domain_in",
    "detects",
    "from_untrusted",
    "from_prompt",
    "session_count",
    "each",
    "some",
)


def severity(decision: str) -> int:
    """Rank of a decision: 0 is the most restrictive."""
    return _SEVERITY[decision]


@dataclass(frozen=True, slots=True)
class Condition:
    """One node of a condition tree.

    `op` is `eq`, `in`, `not_in` (with `field` and `value`), `exists` (with `field` only: the
    field is present and not null), or `not`, `all`, `any` (with `children`). The operators of
    section 9 (`gatehouse.policy.operators`): `gt`, `gte`, `lt`, `lte`, `len_gt`, `len_lt` (a
    number), `matches` (a pattern), `contains` (a scalar), `glob`, `in_set`, `not_in_set`,
    `domain_in`, `not_domain_in`, `detects` (a tuple of patterns, set names, domains, detector
    names), `from_untrusted`, `from_prompt` (field only), `session_count` (value `(targets, cmp,
    n)`), `each` / `some` (`field`, `value` `any` or `all`, `children` in which `$` is the element).
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
        if self.op in ("exists", "from_untrusted", "from_prompt"):
            return {self.op: self.field}
        if self.op in ("each", "some"):
            return {self.op: {"field": self.field, self.value: [c.to_data() for c in self.children]}}
        if self.op == "session_count":
            targets, cmp, n = self.value
            return {"session_count": {"targets": list(targets), cmp: n}}
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
    # Globs over `adapter:<adapter>:<action>`: the rule judges the results of those tool calls
    # (and, with `topics` too, only of those made inside jobs on those topics).
    targets: tuple[str, ...] = ()
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

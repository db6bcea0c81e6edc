"""The pure policy engine: YAML rules -> compiled index -> decisions and explanations.

No I/O happens here (YAML parsing of text the caller hands in aside): no clock, no database,
no network. A test walks the imports to keep it that way.
"""

from __future__ import annotations

from gatehouse.errors import PolicyError
from gatehouse.policy._catalog_loader import read_sandbox
from gatehouse.policy.canonical import canonical_data, canonical_json
from gatehouse.policy.detections import detected, detections_of
from gatehouse.policy.engine import EvaluationError, Policy, load
from gatehouse.policy.glob import compile_glob, compile_target, is_valid_topic
from gatehouse.policy.model import (
    ALLOW,
    CONTEXTS,
    DECISIONS,
    DENY,
    JOB_CONTEXT,
    REQUIRE_APPROVAL,
    STEP_CONTEXT,
    Condition,
    ContextSchema,
    Decision,
    Explanation,
    Match,
    OutputRule,
    Remediation,
    Requirement,
    Rule,
    RuleTrace,
    severity,
)
from gatehouse.policy.provenance import Provenance
from gatehouse.policy.text import fold, host_of

__all__ = [
    "ALLOW",
    "CONTEXTS",
    "DECISIONS",
    "DENY",
    "JOB_CONTEXT",
    "REQUIRE_APPROVAL",
    "STEP_CONTEXT",
    "Condition",
    "ContextSchema",
    "Decision",
    "EvaluationError",
    "Explanation",
    "Match",
    "OutputRule",
    "Policy",
    "PolicyError",
    "Provenance",
    "Remediation",
    "Requirement",
    "Rule",
    "RuleTrace",
    "canonical_data",
    "canonical_json",
    "compile_glob",
    "compile_target",
    "detected",
    "detections_of",
    "fold",
    "host_of",
    "is_valid_topic",
    "load",
    "read_sandbox",
    "severity",
]

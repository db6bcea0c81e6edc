"""Sessions of the step gate: a trusted task, the steps proposed in it and what they returned.

A session belongs to one tenant and one identity (another's reads as absent). Each step is
decided once (`(session_id, step_id)` is unique); its result, when reported, keeps the output
for provenance when the action is untrusted, up to a bound per session: past it nothing more is
kept and the session is `bounded`, which makes `from_untrusted` hold for every value.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any

from gatehouse.crypto import canonical
from gatehouse.policy.provenance import strings_in

__all__ = ["DEFAULT_SESSION_BOUND", "Session", "SessionStep", "output_size", "params_schema", "sha256_of"]

DEFAULT_SESSION_BOUND = 4 * 1024 * 1024


def sha256_of(data: Any) -> str:
    return hashlib.sha256(canonical(data)).hexdigest()


def output_size(output: Any) -> int:
    """What an output weighs against a session's bound: the characters of its strings."""
    return sum(len(s) for s in strings_in(output))


def params_schema(value: Any) -> Any:
    """The shape of `value`, for logs that must not hold it: names and types, not values."""
    if isinstance(value, dict):
        return {str(k): params_schema(v) for k, v in value.items()}
    if isinstance(value, list):
        return [params_schema(v) for v in value[:8]]
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return "string"


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    tenant: str
    identity_id: str
    task: str
    created_at: float
    job_id: str | None = None
    untrusted_size: int = 0
    bounded: bool = False
    # Counts the changes to the session and its steps (a step decided, settled or given its
    # result): a reader holding a view at revision r asks only for the steps changed after r.
    revision: int = 0

    def to_public(self) -> dict[str, Any]:
        from gatehouse.domain.ids import rfc3339

        return {
            "session_id": self.id,
            "task": self.task,
            "job_id": self.job_id,
            "created_at": rfc3339(self.created_at),
            "untrusted_bytes": self.untrusted_size,
            "bounded": self.bounded,
        }


@dataclass(frozen=True, slots=True)
class SessionStep:
    """A decided step. `output` is the kept (untrusted) output once a result was reported."""

    session_id: str
    step_id: str
    adapter: str
    action: str
    params: dict[str, Any]
    step_hash: str
    decision_id: str
    result: str
    rule_id: str
    created_at: float
    status: str | None = None
    output: Any = None
    trusted: bool = False
    approval_id: str | None = None
    rev: int = 0  # the session's revision when this step last changed
    # When Gatehouse itself took this allowed step to execute it (the broker, the MCP gateway):
    # at most one execution per step, across replicas. Not part of what rules read.
    claimed_at: float | None = None

    @property
    def target(self) -> str:
        return f"adapter:{self.adapter}:{self.action}".lower()  # as `domain.steps.target_of`

    def evolve(self, **changes: Any) -> SessionStep:
        return replace(self, **changes)

    def to_public(self) -> dict[str, Any]:
        from gatehouse.domain.ids import rfc3339

        return {
            "step_id": self.step_id,
            "target": self.target,
            "adapter": self.adapter,
            "action": self.action,
            "step_hash": self.step_hash,
            "decision_id": self.decision_id,
            "decision": self.result,
            "rule_id": self.rule_id,
            "created_at": rfc3339(self.created_at),
            "status": self.status,
            "approval_id": self.approval_id,
        }

    def to_replay(self) -> dict[str, Any]:
        """`to_public` with what judging the step again needs (`?detail=replay`, admins only):
        its params as the agent sent them, and its result as kept: `output` is the untrusted
        output held for provenance (null when trusted, past the session's bound, or not
        reported), `trusted` what the catalog said of the action when the result came."""
        return {**self.to_public(), "params": self.params, "output": self.output, "trusted": self.trusted}

"""Typed changes that travel with a transition: what a job event or an approval event sets.

Theory of operation: a service says *what happened* (an event) and *which values* it brings
(`JobChanges`, `ApprovalUpdate`); the lifecycle tables in `states` say which fields that event
may change, and `plan_job` turns the stored job, the event and the changes into the moved job.
A driver only persists the result, under a compare-and-set on the state it read, so the legal
keys of an update are decided here and never by a driver's column names.

A field left `UNSET` keeps its stored value; `None` is a value (a lease cleared, an error
erased).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from gatehouse.domain import states
from gatehouse.domain.jobs import Job

__all__ = ["NO_CHANGES", "UNSET", "ApprovalUpdate", "JobChanges", "plan_job"]


class _Unset:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False

    # One sentinel, whatever copies it: `is UNSET` must hold after a deepcopy too.
    def __copy__(self) -> _Unset:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> _Unset:
        return self

    def __reduce__(self) -> str:
        return "UNSET"


UNSET: Final[Any] = _Unset()

_JOB_FIELDS = ("policy_snapshot", "lease_owner", "lease_expires_at", "result", "error", "derived")
_APPROVAL_FIELDS = ("approver_id", "decided_at", "comment", "token", "nonce")


@dataclass(frozen=True, slots=True)
class JobChanges:
    """The job fields one transition sets. `add_attempt` counts one more lease handed out (the
    store adds one to the *stored* count, never to a caller's stale copy)."""

    policy_snapshot: str | None = UNSET
    lease_owner: str | None = UNSET
    lease_expires_at: float | None = UNSET
    result: Any = UNSET
    error: str | None = UNSET
    derived: dict[str, Any] = UNSET
    add_attempt: bool = False

    def values(self) -> dict[str, Any]:
        """The fields that are set, by name (`attempts` not included)."""
        return {name: getattr(self, name) for name in _JOB_FIELDS if getattr(self, name) is not UNSET}


NO_CHANGES: Final = JobChanges()


def plan_job(job: Job, event: str, changes: JobChanges, at: float) -> tuple[Job, dict[str, Any]]:
    """The job after `event` with `changes`, and the changed fields (`attempts` included).

    Raises `InvalidTransition` when the job's state does not allow the event and `ValueError`
    when the changes name a field the event may not change.
    """
    new_status = states.next_state(job.status, event)
    allowed = states.CHANGES.get(event, frozenset())
    values = changes.values()
    if changes.add_attempt:
        values["attempts"] = job.attempts + 1
    illegal = sorted(values.keys() - allowed)
    if illegal:
        raise ValueError(f"`{event}` cannot change the job's `{illegal[0]}`")
    return job.evolve(status=new_status, updated_at=at, **values), values


@dataclass(frozen=True, slots=True)
class ApprovalUpdate:
    """A compare-and-set on one approval: `event` names the row of the approval table (so the
    status it must be in, and the one it moves to) and the fields it brings."""

    approval_id: str
    event: str
    approver_id: str | None = UNSET
    decided_at: float | None = UNSET
    comment: str | None = UNSET
    token: dict[str, Any] | None = UNSET
    nonce: str | None = UNSET

    def __post_init__(self) -> None:
        states.approval_source(self.event)  # an unknown event fails here, not in a driver
        allowed = states.APPROVAL_CHANGES[self.event]
        illegal = [f for f in _APPROVAL_FIELDS if getattr(self, f) is not UNSET and f not in allowed]
        if illegal:
            raise ValueError(f"approval `{self.event}` cannot change `{illegal[0]}`")

    @property
    def expected(self) -> str:
        """The status the approval must have for the update to apply."""
        return states.approval_source(self.event)

    @property
    def status(self) -> str:
        return states.approval_next(self.expected, self.event)

    def values(self) -> dict[str, Any]:
        """Every field it sets, `status` included."""
        out: dict[str, Any] = {"status": self.status}
        for name in _APPROVAL_FIELDS:
            value = getattr(self, name)
            if value is not UNSET:
                out[name] = value
        return out

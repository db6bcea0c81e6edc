"""The job lifecycle, as one table.

Theory of operation: a job is born by one of the three `submit_*` events (the submit gate's
answer), then moves only along the rows of `TRANSITIONS`. Every other module asks this table
(`next_state`) instead of writing states by hand, and the store applies a transition as a
compare-and-set on the current state, so two actors can never both move the same job.

    submit_allow ----------------> queued --dispatch_allow--> dispatched --start--> running
    submit_require_approval -----> pending_approval --approve--> queued           |
    submit_deny -----------------> denied                                          v
                                                    succeed / fail / quarantine (output gate)
"""

from __future__ import annotations

__all__ = [
    "ACTIVE",
    "STATES",
    "TERMINAL",
    "TRANSITIONS",
    "InvalidTransition",
    "can",
    "next_state",
    "sources",
]

PENDING_APPROVAL = "pending_approval"
QUEUED = "queued"
DISPATCHED = "dispatched"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
QUARANTINED = "quarantined"
DENIED = "denied"
REJECTED = "rejected"
EXPIRED = "expired"
CANCELLED = "cancelled"

STATES = (
    PENDING_APPROVAL,
    QUEUED,
    DISPATCHED,
    RUNNING,
    SUCCEEDED,
    FAILED,
    QUARANTINED,
    DENIED,
    REJECTED,
    EXPIRED,
    CANCELLED,
)
TERMINAL = frozenset({SUCCEEDED, FAILED, DENIED, REJECTED, EXPIRED, CANCELLED})
# Quarantined output waits for a reviewer; it is not terminal until released or discarded.
ACTIVE = frozenset({PENDING_APPROVAL, QUEUED, DISPATCHED, RUNNING})

_NEW = None  # the "state" of a job that does not exist yet

# (state, event) -> new state
TRANSITIONS: dict[tuple[str | None, str], str] = {
    (_NEW, "submit_allow"): QUEUED,
    (_NEW, "submit_require_approval"): PENDING_APPROVAL,
    (_NEW, "submit_deny"): DENIED,
    (QUEUED, "dispatch_allow"): DISPATCHED,
    (QUEUED, "dispatch_deny"): DENIED,
    (QUEUED, "dispatch_require_approval"): PENDING_APPROVAL,
    (QUEUED, "cancel"): CANCELLED,
    (QUEUED, "approval_expire"): EXPIRED,  # approved, but the token expired before dispatch
    (PENDING_APPROVAL, "approve"): QUEUED,
    (PENDING_APPROVAL, "reject"): REJECTED,
    (PENDING_APPROVAL, "approval_expire"): EXPIRED,
    (PENDING_APPROVAL, "cancel"): CANCELLED,
    (DISPATCHED, "start"): RUNNING,
    (DISPATCHED, "lease_expire"): QUEUED,
    (DISPATCHED, "succeed"): SUCCEEDED,
    (DISPATCHED, "fail"): FAILED,
    (DISPATCHED, "quarantine"): QUARANTINED,
    (DISPATCHED, "give_up"): EXPIRED,
    (RUNNING, "lease_expire"): QUEUED,
    (RUNNING, "succeed"): SUCCEEDED,
    (RUNNING, "fail"): FAILED,
    (RUNNING, "quarantine"): QUARANTINED,
    (RUNNING, "give_up"): EXPIRED,
    (QUARANTINED, "release"): SUCCEEDED,
    (QUARANTINED, "discard"): FAILED,
}


class InvalidTransition(ValueError):
    def __init__(self, state: str | None, event: str) -> None:
        super().__init__(f"cannot `{event}` a job that is `{state}`")
        self.state = state
        self.event = event


def next_state(state: str | None, event: str) -> str:
    """The state after `event`, or `InvalidTransition`."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise InvalidTransition(state, event) from None


def can(state: str | None, event: str) -> bool:
    return (state, event) in TRANSITIONS


def sources(event: str) -> tuple[str, ...]:
    """Every state from which `event` is allowed (the store's compare-and-set set)."""
    return tuple(s for (s, e) in TRANSITIONS if e == event and s is not None)

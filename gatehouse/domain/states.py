"""The job and approval lifecycles, as tables.

Theory of operation: everything that moves a job or an approval lives in this file. A job is
born by one of the two `submit_*` events (the submit gate's answer; a denied submit stores no
job), then moves only along the rows of `TRANSITIONS`. An approval request is born `pending` and
moves only along `APPROVAL_TRANSITIONS`; every approval status the code names comes from here.
Other modules ask these tables (`next_state`, `sources`, `approval_next`, `approval_source`)
instead of writing states by hand, and the store applies a transition as a compare-and-set on
the current state, so two actors can never both move the same job or the same approval.

    submit_allow ----------------> queued --dispatch_allow--> dispatched --start--> running
    submit_require_approval -----> pending_approval --approve--> queued           |
                                                                                   v
                                                    succeed / fail / quarantine (output gate)

    approval:  pending --approve--> approved --consume--> consumed   (the dispatch that used it)
               pending --reject / expire--> rejected / expired
               approved --lapse / invalidate / supersede--> expired / void / stale

The fields a job event may change are in `CHANGES`, and those an approval event may change in
`APPROVAL_CHANGES`: the legal keys of a change are decided here, not by a driver's columns.
"""

from __future__ import annotations

__all__ = [
    "APPROVAL_CHANGES",
    "APPROVAL_STATUSES",
    "APPROVAL_TRANSITIONS",
    "CHANGES",
    "STATES",
    "TRANSITIONS",
    "InvalidTransition",
    "approval_next",
    "approval_source",
    "next_state",
    "sources",
]

# job states
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

_NEW = None  # the "state" of a job or approval that does not exist yet

# (state, event) -> new state
TRANSITIONS: dict[tuple[str | None, str], str] = {
    (_NEW, "submit_allow"): QUEUED,
    (_NEW, "submit_require_approval"): PENDING_APPROVAL,
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

_LEASE = frozenset({"lease_owner", "lease_expires_at"})
_OUTCOME = frozenset({"result", "error", "derived"})

# event -> the job fields it may change (besides `status` and `updated_at`, which every event
# sets). `attempts` is only ever counted up by the store, from the stored value.
CHANGES: dict[str, frozenset[str]] = {
    "dispatch_allow": frozenset({"policy_snapshot", "attempts"}) | _LEASE,
    "dispatch_deny": frozenset({"policy_snapshot"}),
    "dispatch_require_approval": frozenset({"policy_snapshot"}),
    "cancel": frozenset(),
    "approval_expire": frozenset(),
    "approve": frozenset(),
    "reject": frozenset(),
    "start": frozenset({"lease_expires_at"}),
    "lease_expire": _LEASE,
    "give_up": _LEASE | {"error"},
    "succeed": _LEASE | _OUTCOME,
    "fail": _LEASE | _OUTCOME,
    "quarantine": _LEASE | _OUTCOME,
    "release": _OUTCOME,
    "discard": _OUTCOME,
}

# approval statuses
APPROVAL_PENDING = "pending"
APPROVAL_APPROVED = "approved"
APPROVAL_REJECTED = "rejected"
APPROVAL_EXPIRED = "expired"
APPROVAL_STALE = "stale"  # approved on a policy that changed since, and asked again
APPROVAL_VOID = "void"  # its token could not release the job (forged, wrong job, job changed)
APPROVAL_CONSUMED = "consumed"

APPROVAL_STATUSES = (
    APPROVAL_PENDING,
    APPROVAL_APPROVED,
    APPROVAL_REJECTED,
    APPROVAL_EXPIRED,
    APPROVAL_STALE,
    APPROVAL_CONSUMED,
    APPROVAL_VOID,
)

# (status, event) -> new status. Each event has exactly one source, so an update names the
# event and the compare-and-set status follows from it.
APPROVAL_TRANSITIONS: dict[tuple[str | None, str], str] = {
    (_NEW, "request"): APPROVAL_PENDING,
    (APPROVAL_PENDING, "approve"): APPROVAL_APPROVED,
    (APPROVAL_PENDING, "reject"): APPROVAL_REJECTED,
    (APPROVAL_PENDING, "expire"): APPROVAL_EXPIRED,  # nobody decided in time
    (APPROVAL_APPROVED, "consume"): APPROVAL_CONSUMED,  # its nonce released the job, once
    (APPROVAL_APPROVED, "lapse"): APPROVAL_EXPIRED,  # the token expired before dispatch
    (APPROVAL_APPROVED, "invalidate"): APPROVAL_VOID,
    (APPROVAL_APPROVED, "supersede"): APPROVAL_STALE,
}

_DECIDED = frozenset({"approver_id", "decided_at", "comment"})

# event -> the approval fields it may change (besides `status`)
APPROVAL_CHANGES: dict[str, frozenset[str]] = {
    "approve": _DECIDED | {"token", "nonce"},
    "reject": _DECIDED,
    "expire": frozenset(),
    "consume": frozenset({"consumed_at"}),
    "lapse": frozenset(),
    "invalidate": frozenset(),
    "supersede": frozenset(),
}


class InvalidTransition(ValueError):
    def __init__(self, state: str | None, event: str, what: str = "job") -> None:
        super().__init__(f"cannot `{event}` a {what} that is `{state}`")
        self.state = state
        self.event = event


def next_state(state: str | None, event: str) -> str:
    """The job state after `event`, or `InvalidTransition`."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise InvalidTransition(state, event) from None


def sources(event: str) -> tuple[str, ...]:
    """Every state from which `event` is allowed (the store's compare-and-set set)."""
    return tuple(s for (s, e) in TRANSITIONS if e == event and s is not None)


def approval_next(status: str | None, event: str) -> str:
    """The approval status after `event`, or `InvalidTransition`."""
    try:
        return APPROVAL_TRANSITIONS[(status, event)]
    except KeyError:
        raise InvalidTransition(status, event, "approval") from None


def approval_source(event: str) -> str:
    """The one status an approval must be in for `event` (its compare-and-set value)."""
    found = [s for (s, e) in APPROVAL_TRANSITIONS if e == event and s is not None]
    if len(found) != 1:
        raise InvalidTransition(None, event, "approval")
    return found[0]

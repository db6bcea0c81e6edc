"""The lifecycle tables, row by row: every row moves where it says, every other pair is refused."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from gatehouse.domain import states
from gatehouse.domain.changes import UNSET, ApprovalUpdate, JobChanges, plan_job
from gatehouse.domain.jobs import Job

JOB_ROWS = sorted(states.TRANSITIONS.items(), key=lambda kv: (str(kv[0][0]), kv[0][1]))
JOB_EVENTS = sorted({e for _, e in states.TRANSITIONS})
JOB_NON_ROWS = [
    (s, e)
    for s, e in itertools.product((None, *states.STATES), JOB_EVENTS)
    if (s, e) not in states.TRANSITIONS
]
APPROVAL_ROWS = sorted(states.APPROVAL_TRANSITIONS.items(), key=lambda kv: (str(kv[0][0]), kv[0][1]))
APPROVAL_EVENTS = sorted({e for _, e in states.APPROVAL_TRANSITIONS})
APPROVAL_NON_ROWS = [
    (s, e)
    for s, e in itertools.product((None, *states.APPROVAL_STATUSES), APPROVAL_EVENTS)
    if (s, e) not in states.APPROVAL_TRANSITIONS
]


def job(status: str) -> Job:
    return Job(
        id="job-1",
        tenant="t1",
        identity_id="idn",
        topic="job.x",
        prompt="",
        labels={},
        meta={},
        status=status,
        job_hash="h",
        created_at=1.0,
        updated_at=1.0,
        attempts=2,
    )


@pytest.mark.parametrize(("row", "target"), JOB_ROWS, ids=[f"{s}-{e}" for (s, e), _ in JOB_ROWS])
def test_every_job_row(row: tuple[str | None, str], target: str) -> None:
    state, event = row
    assert states.next_state(state, event) == target
    assert target in states.STATES
    if state is not None:
        assert state in states.sources(event)
        moved, values = plan_job(job(state), event, JobChanges(), at=5.0)
        assert (moved.status, moved.updated_at, values) == (target, 5.0, {})


@pytest.mark.parametrize(("state", "event"), JOB_NON_ROWS)
def test_every_other_job_pair_is_refused(state: str | None, event: str) -> None:
    with pytest.raises(states.InvalidTransition):
        states.next_state(state, event)
    assert state not in states.sources(event)
    if state is not None:
        with pytest.raises(states.InvalidTransition):
            plan_job(job(state), event, JobChanges(), at=5.0)


def test_a_denied_submit_is_no_row() -> None:
    # A denied submit stores no job, so the table has no event that makes one `denied` at birth.
    assert all(s is not None for (s, _e), t in states.TRANSITIONS.items() if t == states.DENIED)
    assert [e for (s, e) in states.TRANSITIONS if s is None] == ["submit_allow", "submit_require_approval"]


def test_every_job_event_names_the_fields_it_may_change() -> None:
    assert set(states.CHANGES) == set(JOB_EVENTS) - {"submit_allow", "submit_require_approval"}
    fields = {"policy_snapshot", "lease_owner", "lease_expires_at", "result", "error", "derived", "attempts"}
    assert set().union(*states.CHANGES.values()) <= fields


@pytest.mark.parametrize("event", sorted(states.CHANGES))
def test_a_change_outside_the_events_fields_is_refused(event: str) -> None:
    source = states.sources(event)[0]
    for name in ("policy_snapshot", "lease_owner", "lease_expires_at", "result", "error", "derived"):
        changes = JobChanges(**{name: None})
        if name in states.CHANGES[event]:
            moved, values = plan_job(job(source), event, changes, at=5.0)
            assert values == {name: None} and getattr(moved, name) is None
        else:
            with pytest.raises(ValueError, match="cannot change"):
                plan_job(job(source), event, changes, at=5.0)
    counted = JobChanges(add_attempt=True)
    if "attempts" in states.CHANGES[event]:
        assert plan_job(job(source), event, counted, at=5.0)[0].attempts == 3
    else:
        with pytest.raises(ValueError):
            plan_job(job(source), event, counted, at=5.0)


@pytest.mark.parametrize(("row", "target"), APPROVAL_ROWS, ids=[f"{s}-{e}" for (s, e), _ in APPROVAL_ROWS])
def test_every_approval_row(row: tuple[str | None, str], target: str) -> None:
    status, event = row
    assert states.approval_next(status, event) == target
    assert target in states.APPROVAL_STATUSES
    if status is not None:
        assert states.approval_source(event) == status
        update = ApprovalUpdate("apr-1", event)
        assert (update.expected, update.status, update.values()) == (status, target, {"status": target})


@pytest.mark.parametrize(("status", "event"), APPROVAL_NON_ROWS)
def test_every_other_approval_pair_is_refused(status: str | None, event: str) -> None:
    with pytest.raises(states.InvalidTransition):
        states.approval_next(status, event)


def test_approval_updates_carry_only_their_events_fields() -> None:
    granted = ApprovalUpdate(
        "a", "approve", approver_id="p", decided_at=2.0, comment=None, token={}, nonce="n"
    )
    assert granted.values() == {
        "status": "approved",
        "approver_id": "p",
        "decided_at": 2.0,
        "comment": None,
        "token": {},
        "nonce": "n",
    }
    with pytest.raises(ValueError, match="cannot change `nonce`"):
        ApprovalUpdate("a", "reject", nonce="n")
    with pytest.raises(ValueError, match="cannot change `approver_id`"):
        ApprovalUpdate("a", "expire", approver_id="p")
    with pytest.raises(states.InvalidTransition):
        ApprovalUpdate("a", "request")  # a request is inserted, never updated
    with pytest.raises(states.InvalidTransition):
        ApprovalUpdate("a", "nonsense")
    assert repr(UNSET) == "UNSET"


def test_approval_status_literals_come_from_the_table() -> None:
    """Control and store name approval statuses only through `states` (habit 3)."""
    root = Path(__file__).resolve().parents[2] / "gatehouse"
    literal = re.compile(r"[\"'](pending|approved|rejected|consumed|void|stale)[\"']")
    offenders = []
    for folder in ("control", "store"):
        for path in sorted((root / folder).rglob("*.py")):
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if literal.search(line):
                    offenders.append(f"{path.relative_to(root)}:{n}: {line.strip()}")
    assert offenders == []

"""One contract for every store: each test runs on every backend of `conftest.STORES`.

Every method of `Store` is exercised here, with the attacks that matter run concurrently
(`asyncio.gather`): a nonce released once, a job dispatched once, an idempotency key mapped
once, compare-and-set refusals that change nothing, tenant filters on every read, an audit chain
that verifies after the writes, and a signed checkpoint at close and at export.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from typing import Any

import pytest
from store_backends import CHECKPOINT_EVERY

from gatehouse.audit.binding import job_digest, verify_rows
from gatehouse.audit.chain import GENESIS
from gatehouse.audit.events import AuditEvent, current_actor, current_request_id
from gatehouse.audit.verify import verify_store
from gatehouse.crypto import SigningKey
from gatehouse.domain import states
from gatehouse.domain.approvals import Approval
from gatehouse.domain.changes import ApprovalUpdate, JobChanges
from gatehouse.domain.containment import Containment
from gatehouse.domain.identity import Identity
from gatehouse.domain.jobs import Job
from gatehouse.domain.records import DecisionRecord
from gatehouse.domain.sessions import Session, SessionStep
from gatehouse.errors import BadRequest, Conflict
from gatehouse.store.base import PolicyRow, Store

pytestmark = pytest.mark.anyio

T0 = 1_000.0


def job(n: int | str, *, tenant: str = "t1", topic: str = "job.demo.echo", **kw: Any) -> Job:
    fields: dict[str, Any] = {
        "id": f"job-{n}",
        "tenant": tenant,
        "identity_id": kw.pop("identity_id", "idn-a"),
        "topic": topic,
        "prompt": "echo hi",
        "labels": {"env": "dev"},
        "meta": {"capability": "demo"},
        "status": kw.pop("status", states.QUEUED),
        "job_hash": f"hash-{n}",
        "created_at": T0,
        "updated_at": T0,
    }
    fields.update(kw)
    return Job(**fields)


def record(n: int | str, *, job_id: str | None = None, tenant: str = "t1", **kw: Any) -> DecisionRecord:
    fields: dict[str, Any] = {
        "decision_id": f"dec-{n}",
        "timestamp": T0,
        "result": "allow",
        "rule_id": "default",
        "reason": "",
        "stage": "submit",
        "policy_snapshot": "snap",
        "job_hash": None,
        "job_id": job_id,
        "tenant": tenant,
    }
    fields.update(kw)
    return DecisionRecord(**fields)


def approval(n: int | str, j: Job, **kw: Any) -> Approval:
    fields: dict[str, Any] = {
        "id": f"apr-{n}",
        "job_id": j.id,
        "tenant": j.tenant,
        "job_hash": j.job_hash,
        "policy_snapshot": "snap",
        "rule_id": "needs-approval",
        "reason": "prod",
        "status": states.APPROVAL_PENDING,
        "requested_at": T0,
        "expires_at": T0 + 900,
        "ttl": 900,
        "requested_by": j.identity_id,
    }
    fields.update(kw)
    return Approval(**fields)


def identity(n: int | str, tenant: str = "t1", created_at: float = T0) -> Identity:
    return Identity(
        id=f"idn-{n}",
        name=f"agent-{n}",
        tenant=tenant,
        roles=("agent",),
        topics=("job.**",),
        capabilities=(),
        created_at=created_at,
    )


async def submitted(store: Store, n: int | str, **kw: Any) -> Job:
    j = job(n, **kw)
    return await store.insert_job(j, record(f"s{n}", job_id=j.id, tenant=j.tenant))


async def approved(store: Store, n: int | str, nonce: str = "nonce-1") -> tuple[Job, Approval]:
    """A job whose approval was granted: queued, with an approved approval holding `nonce`."""
    j = job(n, status=states.PENDING_APPROVAL)
    a = approval(n, j)
    await store.insert_job(j, record(f"s{n}", job_id=j.id), a)
    moved = await store.transition(
        j.id,
        "approve",
        at=T0 + 1,
        approval=ApprovalUpdate(
            a.id, "approve", approver_id="idn-b", decided_at=T0 + 1, comment=None, token={"t": 1}, nonce=nonce
        ),
    )
    assert moved is not None and moved.status == states.QUEUED
    got = await store.approval(a.id)
    assert got is not None
    return moved, got


def dispatch(owner: str) -> JobChanges:
    return JobChanges(policy_snapshot="snap", lease_owner=owner, lease_expires_at=T0 + 60, add_attempt=True)


# identities ---------------------------------------------------------------------------------
async def test_identities_add_find_list_revoke(store: Store) -> None:
    await store.add_identity(identity("a", "t1", T0), "hash-a")
    await store.add_identity(identity("b", "t2", T0 + 1), "hash-b")
    await store.add_identity(identity("c", "t1", T0 + 2), "hash-c")
    found = await store.identity_by_key_hash("hash-a")
    assert found is not None and found.id == "idn-a" and found.roles == ("agent",)
    assert await store.identity_by_key_hash("hash-nobody") is None
    assert (await store.get_identity("idn-b")) == identity("b", "t2", T0 + 1)
    assert await store.get_identity("idn-nobody") is None
    assert [i.id for i in await store.list_identities("t1")] == ["idn-a", "idn-c"]
    assert [i.id for i in await store.list_identities(None)] == ["idn-a", "idn-b", "idn-c"]
    assert await store.revoke_identity("idn-a", T0 + 5) is True
    assert await store.revoke_identity("idn-a", T0 + 6) is False  # once
    assert await store.revoke_identity("idn-nobody", T0 + 6) is False
    revoked = await store.identity_by_key_hash("hash-a")  # seen at once, cache or not
    assert revoked is not None and revoked.revoked_at == T0 + 5


# containments -------------------------------------------------------------------------------
async def test_containments_one_active_per_target_and_lifted_once(store: Store) -> None:
    c = Containment("inc-1", "tenant", "t1", "leak", T0, "idn-admin")
    await store.add_containment(c)
    with pytest.raises(Conflict) as raised:
        await store.add_containment(Containment("inc-2", "tenant", "t1", "again", T0 + 1, None))
    assert raised.value.code == "already_contained"
    await store.add_containment(Containment("inc-3", "identity", "idn-x", "bad", T0 + 2, None))
    assert [x.id for x in await store.containments(active_only=True)] == ["inc-1", "inc-3"]
    lifted = await store.lift_containment("inc-1", at=T0 + 5, by="idn-admin")
    assert lifted is not None and lifted.lifted_at == T0 + 5 and lifted.lifted_by == "idn-admin"
    assert await store.lift_containment("inc-1", at=T0 + 6, by="idn-admin") is None
    assert await store.lift_containment("inc-nope", at=T0 + 6, by="idn-admin") is None
    assert [x.id for x in await store.containments(active_only=True)] == ["inc-3"]
    assert [x.id for x in await store.containments(active_only=False)] == ["inc-1", "inc-3"]
    await store.add_containment(Containment("inc-4", "tenant", "t1", "relapse", T0 + 7, None))


# jobs ---------------------------------------------------------------------------------------
async def test_insert_get_and_tenant_isolation(store: Store) -> None:
    stored = await submitted(store, 1, idempotency_key="k1", labels={"env": "dev", "team": "a"})
    assert stored.seq > 0
    got = await store.get_job("job-1")
    assert got is not None and got.labels == {"env": "dev", "team": "a"} and got.seq == stored.seq
    assert await store.get_job("job-1", "t1") == got
    assert await store.get_job("job-1", "t2") is None  # another tenant's job reads as absent
    assert await store.get_job("job-none") is None
    assert await store.job_by_idempotency_key("idn-a", "k1") == got
    assert await store.job_by_idempotency_key("idn-b", "k1") is None
    with pytest.raises(Conflict) as raised:
        await store.insert_job(job(1), record("other", job_id="job-1"))
    assert raised.value.code == "duplicate_job"


async def test_a_stored_job_is_not_the_callers_object(store: Store) -> None:
    j = job(1)
    await store.insert_job(j, record(1, job_id=j.id))
    j.labels["env"] = "prod"  # the caller mutates its copy afterwards
    got = await store.get_job("job-1")
    assert got is not None and got.labels == {"env": "dev"}


async def test_an_idempotency_key_is_mapped_once_under_concurrency(store: Store) -> None:
    attempts = [job(n, idempotency_key="same") for n in range(8)]
    results = await asyncio.gather(
        *(store.insert_job(j, record(n, job_id=j.id)) for n, j in enumerate(attempts)),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, Job)]
    losers = [r for r in results if not isinstance(r, Job)]
    assert len(winners) == 1
    assert all(isinstance(r, Conflict) and r.code == "duplicate_job" for r in losers)
    mapped = await store.job_by_idempotency_key("idn-a", "same")
    assert mapped is not None and mapped.id == winners[0].id
    assert [j.id for j in (await store.list_jobs(None)).jobs] == [winners[0].id]
    # The refused inserts left no decision record and no audit entry behind.
    page = await store.list_decisions(None, limit=100)
    assert len(page.decisions) == 1
    submitted_entries = [e for e in await store.audit_entries("tenant:t1") if e.type == "job.submitted"]
    assert len(submitted_entries) == 1


async def test_jobs_submitted_together_are_audited_as_their_own_requests(store: Store) -> None:
    # A driver may write concurrent submits in one transaction (PostgreSQL does): each entry
    # still names the actor and request that made it, and a duplicate refuses only itself.
    async def submit(n: int) -> Job:
        current_actor.set(f"idn-{n}")
        current_request_id.set(f"req-{n}")
        return await submitted(store, n % 6)  # 6..7 repeat 0..1: duplicates in the same burst

    results = await asyncio.gather(*(submit(n) for n in range(8)), return_exceptions=True)
    assert sorted(r.id for r in results if isinstance(r, Job)) == [f"job-{n}" for n in range(6)]
    assert all(isinstance(r, Conflict) for r in results if not isinstance(r, Job))
    entries = [e for e in await store.audit_entries("tenant:t1") if e.type == "job.submitted"]
    assert sorted(e.data["job_id"] for e in entries) == [f"job-{n}" for n in range(6)]
    for e in entries:
        n = int(e.data["job_id"].removeprefix("job-"))
        assert (e.actor, e.request_id) in {(f"idn-{n}", f"req-{n}"), (f"idn-{n + 6}", f"req-{n + 6}")}
    assert len({(e.actor, e.request_id) for e in entries}) == 6


async def test_list_jobs_pages_filters_and_tenant(store: Store) -> None:
    for n in range(5):
        await submitted(store, n, topic="job.a" if n % 2 else "job.b")
    await submitted(store, 9, tenant="t2")
    await store.transition("job-0", "cancel", at=T0 + 1)
    first = await store.list_jobs("t1", limit=2)
    assert [j.id for j in first.jobs] == ["job-4", "job-3"] and first.next_cursor
    second = await store.list_jobs("t1", limit=2, cursor=first.next_cursor)
    assert [j.id for j in second.jobs] == ["job-2", "job-1"] and second.next_cursor
    third = await store.list_jobs("t1", limit=2, cursor=second.next_cursor)
    assert [j.id for j in third.jobs] == ["job-0"] and third.next_cursor is None
    assert [j.id for j in (await store.list_jobs("t1", topic="job.a")).jobs] == ["job-3", "job-1"]
    assert [j.id for j in (await store.list_jobs("t1", status=states.CANCELLED)).jobs] == ["job-0"]
    assert [j.id for j in (await store.list_jobs("t2")).jobs] == ["job-9"]
    assert len((await store.list_jobs(None, limit=50)).jobs) == 6


@pytest.mark.parametrize("cursor", ["!!", "bm9wZQ", "czEyYQ"])
async def test_a_bad_cursor_is_a_bad_request(store: Store, cursor: str) -> None:
    for call in (
        store.list_jobs("t1", cursor=cursor),
        store.list_decisions("t1", cursor=cursor),
        store.list_approvals("t1", None, cursor=cursor),
    ):
        with pytest.raises(BadRequest) as raised:
            await call
        assert raised.value.code == "invalid_cursor"


# transitions --------------------------------------------------------------------------------
async def test_a_transition_applies_its_changes_and_record_together(store: Store) -> None:
    await submitted(store, 1)
    moved = await store.transition(
        "job-1",
        "dispatch_allow",
        at=T0 + 2,
        record=record("d1", job_id="job-1", stage="dispatch"),
        changes=dispatch("w1"),
    )
    assert moved is not None
    assert (moved.status, moved.lease_owner, moved.attempts, moved.updated_at) == (
        states.DISPATCHED,
        "w1",
        1,
        T0 + 2,
    )
    assert await store.get_job("job-1") == moved
    assert [r.decision_id for r in await store.decisions("job-1")] == ["dec-s1", "dec-d1"]
    state = [e.data for e in await store.audit_entries("tenant:t1") if e.type == "job.state"]
    assert state == [
        {
            "job_id": "job-1",
            "from": "queued",
            "to": "dispatched",
            "event": "dispatch_allow",
            "lease_owner": "w1",
            "row_sha256": job_digest(moved),  # the row as this change left it
        }
    ]


async def test_compare_and_set_refusals_change_nothing(store: Store) -> None:
    await submitted(store, 1)
    before = await store.get_job("job-1")
    entries = len(await store.audit_entries("tenant:t1"))
    # `start` is not a row from `queued`: refused, and its record is not stored either.
    assert await store.transition("job-1", "start", at=T0 + 1, record=record("x", job_id="job-1")) is None
    assert await store.transition("job-none", "cancel", at=T0 + 1) is None
    assert await store.get_job("job-1") == before
    assert await store.decision("dec-x") is None
    assert len(await store.audit_entries("tenant:t1")) == entries
    with pytest.raises(ValueError):
        await store.transition("job-1", "no_such_event", at=T0 + 1)
    with pytest.raises(ValueError, match="cannot change"):  # the event decides the legal fields
        await store.transition("job-1", "cancel", at=T0 + 1, changes=JobChanges(result={"x": 1}))
    assert await store.get_job("job-1") == before


async def test_a_job_is_dispatched_once_under_concurrency(store: Store) -> None:
    await submitted(store, 1)
    results = await asyncio.gather(
        *(
            store.transition("job-1", "dispatch_allow", at=T0 + 1, changes=dispatch(f"w{n}"))
            for n in range(10)
        )
    )
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    stored = await store.get_job("job-1")
    assert stored is not None and stored.lease_owner == winners[0].lease_owner and stored.attempts == 1


async def test_attempts_count_from_the_stored_value(store: Store) -> None:
    await submitted(store, 1)
    for round_ in range(3):
        moved = await store.transition("job-1", "dispatch_allow", at=T0 + round_, changes=dispatch("w"))
        assert moved is not None and moved.attempts == round_ + 1
        assert await store.transition(
            "job-1",
            "lease_expire",
            at=T0 + round_,
            changes=JobChanges(lease_owner=None, lease_expires_at=None),
        )


async def test_an_approval_nonce_releases_a_job_once(store: Store) -> None:
    _, a = await approved(store, 1)
    assert a.status == states.APPROVAL_APPROVED and a.nonce == "nonce-1" and a.approver_id == "idn-b"
    # Two dispatchers race with the same token: one wins.
    results = await asyncio.gather(
        *(
            store.transition(
                "job-1", "dispatch_allow", at=T0 + 2, changes=dispatch(f"w{n}"), consume_nonce="nonce-1"
            )
            for n in range(4)
        )
    )
    assert sum(r is not None for r in results) == 1
    used = await store.approval(a.id)
    assert used is not None and used.status == states.APPROVAL_CONSUMED and used.consumed_at == T0 + 2
    # The job comes back to the queue (its lease expired): the same nonce cannot release it again.
    back = await store.transition(
        "job-1", "lease_expire", at=T0 + 3, changes=JobChanges(lease_owner=None, lease_expires_at=None)
    )
    assert back is not None and back.status == states.QUEUED
    replay = await store.transition(
        "job-1", "dispatch_allow", at=T0 + 4, changes=dispatch("w-replay"), consume_nonce="nonce-1"
    )
    assert replay is None
    stored = await store.get_job("job-1")
    assert stored is not None and stored.status == states.QUEUED and stored.lease_owner is None
    # An unknown nonce releases nothing either.
    assert (
        await store.transition(
            "job-1", "dispatch_allow", at=T0 + 5, changes=dispatch("w"), consume_nonce="forged"
        )
        is None
    )
    consumed = [e for e in await store.audit_entries("system") if e.type == "approval.consumed"]
    assert len(consumed) == 1 and "nonce-1" not in str(consumed[0].data)


async def test_an_approval_compare_and_set_refusal_keeps_the_job_where_it_was(store: Store) -> None:
    j, a = await approved(store, 1)
    # A second approver acts on the already-approved request: its update expects `pending`.
    late = await store.transition(
        "job-1",
        "cancel",
        at=T0 + 2,
        record=record("late", job_id="job-1"),
        approval=ApprovalUpdate(a.id, "reject", approver_id="idn-c", decided_at=T0 + 2, comment="no"),
    )
    assert late is None
    assert (await store.get_job("job-1")) == j
    assert (await store.approval(a.id)) == a
    assert await store.decision("dec-late") is None


async def test_approvals_through_their_lifecycle(store: Store) -> None:
    j, a = await approved(store, 1)
    # The policy changed: the job asks again; the old approval goes stale in the same move.
    fresh = approval("2", j, requested_at=T0 + 3, expires_at=T0 + 10)
    moved = await store.transition(
        "job-1",
        "dispatch_require_approval",
        at=T0 + 3,
        changes=JobChanges(policy_snapshot="snap-2"),
        new_approval=fresh,
        approval=ApprovalUpdate(a.id, "supersede"),
    )
    assert moved is not None and moved.status == states.PENDING_APPROVAL and moved.policy_snapshot == "snap-2"
    assert (await store.approval(a.id)).status == states.APPROVAL_STALE  # type: ignore[union-attr]
    assert await store.latest_approval("job-1") == fresh
    assert await store.latest_approval("job-none") is None
    assert await store.approval("apr-none") is None
    assert await store.overdue_approvals(T0 + 5) == []
    assert [x.id for x in await store.overdue_approvals(T0 + 11)] == ["apr-2"]
    expired = await store.transition(
        "job-1", "approval_expire", at=T0 + 11, approval=ApprovalUpdate(fresh.id, "expire")
    )
    assert expired is not None and expired.status == states.EXPIRED
    assert await store.overdue_approvals(T0 + 11) == []
    assert [x.status for x in (await store.list_approvals("t1", None)).approvals] == [
        states.APPROVAL_STALE,
        states.APPROVAL_EXPIRED,
    ]
    assert [x.id for x in (await store.list_approvals("t1", states.APPROVAL_EXPIRED)).approvals] == ["apr-2"]
    assert (await store.list_approvals("t2", None)).approvals == []
    assert len((await store.list_approvals(None, None, limit=1)).approvals) == 1


async def test_list_approvals_pages_oldest_first_by_tenant_and_status(store: Store) -> None:
    ids = []
    for n in range(7):
        j = job(n, status=states.PENDING_APPROVAL)
        a = approval(n, j)
        await store.insert_job(j, record(f"s{n}", job_id=j.id), a)
        ids.append(a.id)
    other = job("x", tenant="t2", status=states.PENDING_APPROVAL)
    await store.insert_job(other, record("sx", job_id=other.id, tenant="t2"), approval("x", other))
    # One leaves the pending queue: a page of `pending` skips it, a page of every status keeps it.
    await store.transition("job-3", "approval_expire", at=T0 + 1, approval=ApprovalUpdate("apr-3", "expire"))
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await store.list_approvals("t1", states.APPROVAL_PENDING, limit=2, cursor=cursor)
        pages += 1
        assert len(page.approvals) <= 2
        seen += [a.id for a in page.approvals]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == 3 and seen == [i for i in ids if i != "apr-3"]  # oldest first, none twice
    whole = await store.list_approvals("t1", None, limit=7)
    assert [a.id for a in whole.approvals] == ids and whole.next_cursor is None  # exactly one page
    rest = await store.list_approvals("t1", None, limit=6)
    assert rest.next_cursor is not None
    last = await store.list_approvals("t1", None, limit=6, cursor=rest.next_cursor)
    assert [a.id for a in last.approvals] == ["apr-6"] and last.next_cursor is None
    # A cursor is a position, not a permission: t1's cursor on t2's queue shows t2's rows only
    # (apr-6 of t1 lies after it too).
    assert [a.id for a in (await store.list_approvals("t2", None, cursor=rest.next_cursor)).approvals] == [
        "apr-x"
    ]
    assert [a.id for a in (await store.list_approvals("t2", None)).approvals] == ["apr-x"]


# leases and the queue -----------------------------------------------------------------------
async def test_queue_leases_and_counts(store: Store) -> None:
    await submitted(store, 1, topic="job.demo.echo")
    await submitted(store, 2, topic="job.exec.shell")
    await submitted(store, 3, topic="job.demo.other", tenant="t2")
    assert [j.id for j in await store.queued_jobs([""], 10)] == ["job-1", "job-2", "job-3"]
    assert [j.id for j in await store.queued_jobs(["job.demo."], 10)] == ["job-1", "job-3"]
    assert [j.id for j in await store.queued_jobs(["job.demo.", "job.exec."], 10, tenant="t1")] == [
        "job-1",
        "job-2",
    ]
    assert [j.id for j in await store.queued_jobs([""], 1)] == ["job-1"]
    await store.transition("job-1", "dispatch_allow", at=T0 + 1, changes=dispatch("w1"))
    # A lease is extended only for a running job, by its holder.
    assert await store.extend_lease("job-1", "w1", T0 + 100, at=T0 + 2) is None
    started = await store.transition(
        "job-1", "start", at=T0 + 2, changes=JobChanges(lease_expires_at=T0 + 60)
    )
    assert started is not None and started.status == states.RUNNING
    assert await store.extend_lease("job-1", "w2", T0 + 100, at=T0 + 3) is None
    extended = await store.extend_lease("job-1", "w1", T0 + 100, at=T0 + 3)
    assert extended is not None and extended.lease_expires_at == T0 + 100 and extended.updated_at == T0 + 3
    assert await store.expired_leases(T0 + 50) == []
    assert [j.id for j in await store.expired_leases(T0 + 101)] == ["job-1"]
    assert await store.count_by_status() == {states.QUEUED: 2, states.RUNNING: 1}
    assert await store.count_by_status("t2") == {states.QUEUED: 1}
    assert await store.oldest_in_state(states.RUNNING) == T0 + 3
    assert await store.oldest_in_state(states.QUARANTINED) is None


async def test_a_finish_records_the_output_and_clears_the_lease(store: Store) -> None:
    await submitted(store, 1)
    await store.transition("job-1", "dispatch_allow", at=T0 + 1, changes=dispatch("w1"))
    done = await store.transition(
        "job-1",
        "succeed",
        at=T0 + 2,
        record=record("out", job_id="job-1", stage="output"),
        changes=JobChanges(
            result={"text": "hi"},
            error=None,
            lease_owner=None,
            lease_expires_at=None,
            derived={"output": {"decision": "allow"}},
        ),
    )
    assert done is not None
    stored = await store.get_job("job-1")
    assert stored == done
    assert (stored.status, stored.result, stored.lease_owner, stored.derived) == (
        states.SUCCEEDED,
        {"text": "hi"},
        None,
        {"output": {"decision": "allow"}},
    )


# the decision log ---------------------------------------------------------------------------
async def test_the_decision_log(store: Store) -> None:
    await store.add_decision(record("a", stage="submit", result="deny", rule_id="r1", timestamp=T0))
    await store.add_decision(record("b", stage="simulate", timestamp=T0 + 10))
    await store.add_decision(record("c", stage="submit", result="deny", rule_id="r2", timestamp=T0 + 20))
    await store.add_decision(record("d", tenant="t2", timestamp=T0 + 30))
    await submitted(store, 1)
    assert (await store.decision("dec-a")) == record("a", stage="submit", result="deny", rule_id="r1")
    assert await store.decision("dec-a", "t2") is None
    assert await store.decision("dec-none") is None
    first = await store.list_decisions("t1", limit=2)
    assert [r.decision_id for r in first.decisions] == ["dec-s1", "dec-c"] and first.next_cursor
    rest = await store.list_decisions("t1", limit=5, cursor=first.next_cursor)
    assert [r.decision_id for r in rest.decisions] == ["dec-b", "dec-a"] and rest.next_cursor is None
    assert [r.decision_id for r in (await store.list_decisions("t1", result="deny")).decisions] == [
        "dec-c",
        "dec-a",
    ]
    assert [r.decision_id for r in (await store.list_decisions("t1", rule_id="r1")).decisions] == ["dec-a"]
    assert [r.decision_id for r in (await store.list_decisions("t1", stage="simulate")).decisions] == [
        "dec-b"
    ]
    assert [
        r.decision_id for r in (await store.list_decisions("t1", since=T0 + 10, stage="submit")).decisions
    ] == ["dec-c"]
    assert [r.decision_id for r in (await store.list_decisions("t2")).decisions] == ["dec-d"]
    assert [r.decision_id for r in await store.decisions("job-1")] == ["dec-s1"]
    assert await store.decisions("job-1", "t2") == []


# audit --------------------------------------------------------------------------------------
async def test_the_audit_chain_verifies_after_writes(store: Store, audit_key: SigningKey) -> None:
    keys = {audit_key.key_id: audit_key.verify_key}
    await store.add_identity(identity("a"), "hash-a")
    for n in range(7):
        await submitted(store, n)
    await store.transition("job-0", "cancel", at=T0 + 1)
    await store.append_audit([AuditEvent("system", "policy.refused", {"why": "bad signature"})])
    assert await store.audit_streams() == ["system", "tenant:t1"]
    # Before the first sealing nothing vouches for the list of streams (a plane seals at start).
    assert [r.stream for r in await verify_store(store, keys) if not r.ok] == ["(roots)"]
    await store.seal_audit()
    reports = await verify_store(store, keys)
    assert all(r.ok for r in reports), [r.to_dict() for r in reports]
    tenant = await store.audit_entries("tenant:t1")
    assert [e.seq for e in tenant] == list(range(1, len(tenant) + 1))
    assert all(e.prev_hash == p.hash for p, e in itertools.pairwise(tenant))
    # Every `checkpoint_every` entries the head is signed.
    assert [c.seq for c in await store.audit_checkpoints("tenant:t1")] == list(
        range(CHECKPOINT_EVERY, len(tenant) + 1, CHECKPOINT_EVERY)
    )
    assert [e.seq for e in await store.audit_entries("tenant:t1", since_seq=10, limit=2)] == [11, 12]
    assert await store.audit_entries("tenant:t1", since_ts=tenant[-1].ts + 3600) == []
    assert await store.audit_entries("tenant:none") == []


async def test_a_failed_write_leaves_the_chain_whole(store: Store, audit_key: SigningKey) -> None:
    await submitted(store, 1)
    with pytest.raises(Conflict):
        await submitted(store, 1)  # refused after nothing was written, audit included
    await asyncio.gather(
        submitted(store, 2), submitted(store, 2), submitted(store, 3), return_exceptions=True
    )
    await submitted(store, 4)
    await store.seal_audit()
    reports = await verify_store(store, {audit_key.key_id: audit_key.verify_key})
    assert all(r.ok for r in reports), [r.to_dict() for r in reports]
    types = [e.type for e in await store.audit_entries("tenant:t1")]
    assert types.count("job.submitted") == 4


async def test_seal_signs_every_moved_head_for_an_export(store: Store, audit_key: SigningKey) -> None:
    await store.add_identity(identity("a"), "hash-a")  # one entry: far below `checkpoint_every`
    await submitted(store, 1)
    sealed = await store.seal_audit()
    heads = {s: (await store.audit_entries(s))[-1] for s in await store.audit_streams()}
    assert {(c.stream, c.seq, c.hash) for c in sealed} == {(s, e.seq, e.hash) for s, e in heads.items()}
    assert all(c.key_id == audit_key.key_id for c in sealed)
    assert await store.seal_audit() == []  # nothing moved since
    reports = await verify_store(store, {audit_key.key_id: audit_key.verify_key})
    assert all(r.ok for r in reports)
    assert all(r.checkpoints >= 1 for r in reports if not r.stream.startswith("("))


async def test_close_signs_the_heads(store: Store, audit_key: SigningKey) -> None:
    await store.add_identity(identity("a"), "hash-a")
    await submitted(store, 1)
    await store.close()
    await store.open()
    for stream in await store.audit_streams():
        last = (await store.audit_entries(stream))[-1]
        cps = await store.audit_checkpoints(stream)
        assert cps and (cps[-1].seq, cps[-1].hash) == (last.seq, last.hash), stream
    reports = await verify_store(store, {audit_key.key_id: audit_key.verify_key})
    assert all(r.ok for r in reports)


async def test_a_store_without_audit_writes_no_entries(store: Store) -> None:
    store.writer.enabled = False  # type: ignore[attr-defined]
    await submitted(store, 1)
    assert await store.audit_streams() == []
    assert await store.get_job("job-1") is not None


# policies -----------------------------------------------------------------------------------
async def test_policy_history_newest_first(store: Store) -> None:
    for n in range(3):
        await store.save_policy(
            PolicyRow(
                snapshot=f"s{n}",
                text=f"v{n}",
                signature={"key_id": "k"} if n else None,
                installed_at=T0 + n,
                installed_by="idn-admin",
                serial=n,
                signature_verified=n == 2,
            )
        )
    history = await store.policy_history()
    assert [p.snapshot for p in history] == ["s2", "s1", "s0"]
    assert history[0].signature == {"key_id": "k"} and history[2].signature is None
    assert [p.snapshot for p in await store.policy_history(limit=1)] == ["s2"]
    installed = [e.data for e in await store.audit_entries("system") if e.type == "policy.installed"]
    # A signature block nobody checked (n == 1) is not a signature.
    assert [d["signed"] for d in installed] == [False, False, True]
    assert [d["claimed_key_id"] for d in installed] == [None, "k", None]


async def test_job_and_decision_rows_are_bound_to_their_entries(store: Store, audit_key: SigningKey) -> None:
    await submitted(store, 1)
    await submitted(store, 2)
    await store.transition("job-1", "cancel", at=T0 + 1)
    entries = [e for s in await store.audit_streams() for e in await store.audit_entries(s)]
    jobs = (await store.list_jobs(None)).jobs
    decisions = (await store.list_decisions(None)).decisions
    assert len(jobs) == 2 and decisions
    assert verify_rows(entries, jobs, decisions).ok
    # A row changed behind the log, one deleted, one added: each is named.
    changed = [j.evolve(status="succeeded") if j.id == "job-1" else j for j in jobs]
    assert "job-1" in (verify_rows(entries, changed, decisions).reason or "")
    allowed = [
        dataclasses.replace(decisions[0], result="allow" if decisions[0].result != "allow" else "deny")
    ]
    assert "row modified" in (verify_rows(entries, jobs, allowed + decisions[1:]).reason or "")
    assert "row deleted" in (verify_rows(entries, jobs[1:], decisions).reason or "")
    extra = jobs[0].evolve(id="job-x")
    assert "no audit entry" in (verify_rows(entries, [*jobs, extra], decisions).reason or "")


async def test_seals_chain_checkpoints_and_roots(store: Store, audit_key: SigningKey) -> None:
    keys = {audit_key.key_id: audit_key.verify_key}
    await store.add_identity(identity("a"), "hash-a")
    for n in range(CHECKPOINT_EVERY + 2):
        await submitted(store, n)
    await store.seal_audit()
    await submitted(store, 100)
    await store.seal_audit()
    roots = await store.audit_roots()
    assert [r.seq for r in roots] == [1, 2] and roots[1].prev == roots[0].digest
    assert set(roots[1].heads) == {"system", "tenant:t1"}
    cps = await store.audit_checkpoints("tenant:t1")
    assert cps[0].prev == GENESIS and all(b.prev == a.digest for a, b in itertools.pairwise(cps))
    assert roots[1].heads["tenant:t1"]["checkpoint"] == cps[-1].digest
    assert all(r.ok for r in await verify_store(store, keys))


# sessions -----------------------------------------------------------------------------------


def session(n: int | str, *, tenant: str = "t1", identity_id: str = "idn-a") -> Session:
    return Session(id=f"ses-{n}", tenant=tenant, identity_id=identity_id, task="pay the rent", created_at=T0)


def session_step(sid: str, step_id: str, n: int | str, **kw: Any) -> SessionStep:
    fields: dict[str, Any] = {
        "session_id": sid,
        "step_id": step_id,
        "adapter": "bank",
        "action": "send_money",
        "params": {"to": "DE89", "amount": 5},
        "step_hash": f"sh-{n}",
        "decision_id": f"dec-{n}",
        "result": "allow",
        "rule_id": "default",
        "created_at": T0,
    }
    fields.update(kw)
    return SessionStep(**fields)


async def test_identity_adapters_are_stored(store: Store) -> None:
    who = dataclasses.replace(identity("a", "t1", T0), adapters=("bank:*", "github:list_*"))
    await store.add_identity(who, "hash-a")
    assert (await store.get_identity("idn-a")) == who
    found = await store.identity_by_key_hash("hash-a")
    assert found is not None and found.adapters == ("bank:*", "github:list_*")


async def test_sessions_are_tenant_scoped_and_unique(store: Store) -> None:
    await store.add_session(session(1))
    assert await store.get_session("ses-1", "t1") == session(1)
    assert await store.get_session("ses-1", "t2") is None  # another tenant's reads as absent
    assert await store.get_session("ses-1") == session(1)
    with pytest.raises(Conflict) as exc:
        await store.add_session(session(1, tenant="t2"))
    assert exc.value.code == "duplicate_session"
    assert await store.get_session("ses-1", "t2") is None


async def test_a_step_is_decided_once_with_its_record(store: Store) -> None:
    await store.add_session(session(1))
    step = session_step("ses-1", "s1", 1)
    rec = record(1, stage="step", extra={"session_id": "ses-1", "step_id": "s1"})
    results = await asyncio.gather(
        store.add_step(step, rec),
        store.add_step(session_step("ses-1", "s1", 2), record(2, stage="step")),
        return_exceptions=True,
    )
    assert sum(r == 1 for r in results) == 1  # the winner took the revision after 0
    assert [r.code for r in results if isinstance(r, Conflict)] == ["duplicate_step"]
    won = await store.get_step("ses-1", "s1")
    assert won is not None
    assert await store.decision(won.decision_id, "t1") is not None  # stored with its record
    loser = "dec-2" if won.decision_id == "dec-1" else "dec-1"
    assert await store.decision(loser) is None  # the refused one left nothing
    await store.add_step(session_step("ses-1", "s2", 3, result="deny"), record(3, stage="step"))
    assert [s.step_id for s in await store.session_steps("ses-1")] == ["s1", "s2"]
    assert await store.get_step("ses-1", "nope") is None
    assert await store.session_steps("ses-nope") == []


async def test_steps_decided_together_take_their_sessions_revisions_in_order(store: Store) -> None:
    # A driver may write concurrent steps in one transaction (PostgreSQL does): each session's
    # steps still take consecutive revisions in the order they came, each audit entry names its
    # own request, and a duplicate or a missing session fails only its own step.
    for n in (1, 2):
        await store.add_session(session(n))

    async def decide(n: int, sid: str, step_id: str) -> int:
        current_actor.set(f"idn-{n}")
        current_request_id.set(f"req-{n}")
        return await store.add_step(session_step(sid, step_id, n), record(n, stage="step"))

    burst = [(1, "ses-1", "a"), (2, "ses-2", "a"), (3, "ses-1", "b"), (4, "ses-2", "b"), (5, "ses-1", "c")]
    assert await asyncio.gather(*(decide(*b) for b in burst)) == [1, 1, 2, 2, 3]
    # A duplicate and a step of no session, in a burst with good steps: only they fail.
    burst = [(6, "ses-1", "d"), (7, "ses-1", "a"), (8, "ses-none", "a"), (9, "ses-2", "c"),
             (10, "ses-1", "e")]  # fmt: skip
    results = await asyncio.gather(*(decide(*b) for b in burst), return_exceptions=True)
    assert results[0] == 4 and isinstance(results[1], Conflict) and isinstance(results[2], ValueError)
    assert results[3:] == [3, 5]
    assert [(s.step_id, s.rev) for s in await store.session_steps("ses-1")] == [
        ("a", 1), ("b", 2), ("c", 3), ("d", 4), ("e", 5)
    ]  # fmt: skip
    assert [(s.step_id, s.rev) for s in await store.session_steps("ses-2")] == [("a", 1), ("b", 2), ("c", 3)]
    assert [s.step_id for s in await store.session_steps("ses-1", since=2)] == ["c", "d", "e"]
    entries = {e.data["decision_id"]: e for e in await store.audit_entries("tenant:t1")}
    for n in (1, 2, 3, 4, 5, 6, 9, 10):
        assert (entries[f"dec-{n}"].actor, entries[f"dec-{n}"].request_id) == (f"idn-{n}", f"req-{n}")
    assert "dec-7" not in entries and "dec-8" not in entries


async def test_step_results_are_set_once_and_outputs_kept_within_the_bound(store: Store) -> None:
    await store.add_session(session(1))
    for i in range(1, 5):
        await store.add_step(session_step("ses-1", f"s{i}", i), record(i, stage="step"))
    kept = await store.record_step_result(
        "ses-1", "s1", status="succeeded", output={"body": "x" * 60}, trusted=False, bound=100
    )
    assert kept is not None and kept.status == "succeeded" and kept.output == {"body": "x" * 60}
    again = await store.record_step_result(
        "ses-1", "s1", status="failed", output="y", trusted=False, bound=100
    )
    assert again is None  # once
    trusted = await store.record_step_result(
        "ses-1", "s2", status="succeeded", output="z" * 90, trusted=True, bound=100
    )
    assert trusted is not None and trusted.output is None and trusted.trusted
    s = await store.get_session("ses-1")
    assert s is not None and s.untrusted_size == 60 and not s.bounded
    over = await store.record_step_result(
        "ses-1", "s3", status="succeeded", output="w" * 50, trusted=False, bound=100
    )
    assert over is not None and over.output is None  # past the bound: dropped ...
    s = await store.get_session("ses-1")
    assert s is not None and s.bounded  # ... and the session fails closed from now on
    assert (
        await store.record_step_result(
            "ses-1", "nope", status="succeeded", output="", trusted=False, bound=100
        )
        is None
    )
    step = await store.get_step("ses-1", "s1")
    assert step is not None and step.output == {"body": "x" * 60}


async def test_results_reported_together_are_kept_and_counted_in_the_order_they_came(store: Store) -> None:
    # A driver may write concurrent results in one transaction (PostgreSQL does): each session's
    # kept size and revisions still advance result by result, a second result for one step and a
    # result for no step change nothing, and each output decision is audited as its request's.
    for n in (1, 2):
        await store.add_session(session(n))
        for i in range(1, 5):
            step = session_step(f"ses-{n}", f"s{i}", f"{n}{i}")
            await store.add_step(step, record(f"{n}{i}", stage="step"))

    async def report(n: int, sid: str, step_id: str, body: str, trusted: bool = False) -> Any:
        current_actor.set(f"idn-{n}")
        current_request_id.set(f"req-{n}")
        rec = record(f"out-{n}", stage="output", extra={"session_id": sid, "step_id": step_id})
        return await store.record_step_result(
            sid, step_id, status="succeeded", output={"body": body}, trusted=trusted, bound=100, record=rec
        )

    burst = [(1, "ses-1", "s1", "a" * 40), (2, "ses-2", "s1", "b" * 40), (3, "ses-1", "s2", "c" * 40),
             (4, "ses-1", "s1", "again"), (5, "ses-1", "nope", "x"), (6, "ses-none", "s1", "x"),
             (7, "ses-1", "s3", "d" * 40), (8, "ses-2", "s2", "e" * 90, True)]  # fmt: skip
    results = await asyncio.gather(*(report(*b) for b in burst))
    kept = {n: r for (n, *_), r in zip(burst, results, strict=True)}
    assert [n for n, r in kept.items() if r is None] == [4, 5, 6]
    # ses-1: 40 + 40 kept; the third 40 crosses the bound of 100: dropped, the session bounded.
    assert kept[1].output == {"body": "a" * 40} and kept[3].output == {"body": "c" * 40}
    assert kept[7].output is None and kept[2].output == {"body": "b" * 40}
    assert kept[8].output is None and kept[8].trusted  # trusted: not counted, not kept
    one, two = await store.get_session("ses-1"), await store.get_session("ses-2")
    assert one is not None and one.bounded and one.untrusted_size == 120
    assert two is not None and not two.bounded and two.untrusted_size == 40
    assert [(s.step_id, s.rev) for s in await store.session_steps("ses-1", since=4)] == [
        ("s1", 5), ("s2", 6), ("s3", 7)
    ]  # fmt: skip
    assert (await store.get_step("ses-1", "s1")).output == {"body": "a" * 40}  # type: ignore[union-attr]
    audited = await store.audit_entries("tenant:t1")
    entries = {e.data["decision_id"]: e for e in audited if e.type == "decision"}
    for n in (1, 2, 3, 7, 8):
        assert (entries[f"dec-out-{n}"].actor, entries[f"dec-out-{n}"].request_id) == (f"idn-{n}", f"req-{n}")
    assert not {"dec-out-4", "dec-out-5", "dec-out-6"} & entries.keys()


async def test_a_step_result_is_stored_with_its_output_decision_and_audit_entries(store: Store) -> None:
    await store.add_session(session(1))
    await store.add_step(session_step("ses-1", "s1", 1), record(1, stage="step"))
    call = AuditEvent("tenant:t1", "adapter.call", {"step_id": "s1", "status": "succeeded"})
    out = record("out-1", stage="output", extra={"session_id": "ses-1", "step_id": "s1"})
    done = await store.record_step_result("ses-1", "s1", status="succeeded", output="x", trusted=False,
                                          bound=100, record=out, events=[call])  # fmt: skip
    assert done is not None and done.status == "succeeded" and done.output == "x"
    assert await store.decision("dec-out-1", "t1") is not None
    types = [e.type for e in await store.audit_entries("tenant:t1")]
    assert types[-2:] == ["decision", "adapter.call"]  # after the result's decision, in order
    # A result refused (the step has one) stores neither its decision nor its entries.
    late = record("out-2", stage="output")
    again = await store.record_step_result("ses-1", "s1", status="failed", output="y", trusted=False,
                                           bound=100, record=late, events=[call])  # fmt: skip
    assert again is None
    assert await store.decision("dec-out-2") is None
    assert [e.type for e in await store.audit_entries("tenant:t1")] == types


async def test_an_allowed_step_is_claimed_for_execution_once(store: Store) -> None:
    await store.add_session(session(1))
    await store.add_step(session_step("ses-1", "s1", 1), record(1, stage="step"))
    await store.add_step(session_step("ses-1", "s2", 2, result="deny"), record(2, stage="step"))
    await store.add_step(session_step("ses-1", "s3", 3), record(3, stage="step"))
    revision = (await store.get_session("ses-1")).revision  # type: ignore[union-attr]
    # Two claimants at once (two replicas' brokers): one wins.
    won = await asyncio.gather(*(store.claim_step("ses-1", "s1", T0 + i) for i in range(4)))
    assert sorted(won) == [False, False, False, True]
    claimed = await store.get_step("ses-1", "s1")
    assert claimed is not None and claimed.claimed_at in {T0 + i for i in range(4)}
    assert not await store.claim_step("ses-1", "s1", T0 + 9)  # once
    assert not await store.claim_step("ses-1", "s2", T0)  # a denied step is never executed
    assert not await store.claim_step("ses-1", "nope", T0)
    await store.record_step_result("ses-1", "s3", status="succeeded", output="x", trusted=False, bound=100)
    assert not await store.claim_step("ses-1", "s3", T0)  # it ran already (reported by its caller)
    # A result still lands on a claimed step; the claim is not a change rules read.
    assert await store.record_step_result("ses-1", "s1", status="succeeded", output="y", trusted=False,
                                          bound=100) is not None  # fmt: skip
    after = await store.get_session("ses-1")
    assert after is not None and after.revision == revision + 2  # the two results only


async def test_every_change_to_a_session_takes_its_next_revision(store: Store) -> None:
    await store.add_session(session(1))
    await store.add_session(session(2))
    for i in range(1, 4):
        # The revision a step took is answered, so a reader can follow its own writes.
        assert await store.add_step(session_step("ses-1", f"s{i}", i), record(i, stage="step")) == i
    s = await store.get_session("ses-1")
    assert s is not None and s.revision == 3
    assert [(x.step_id, x.rev) for x in await store.session_steps("ses-1")] == [
        ("s1", 1),
        ("s2", 2),
        ("s3", 3),
    ]
    assert [x.step_id for x in await store.session_steps("ses-1", since=2)] == ["s3"]
    # A result changes its step: the step moves to the session's next revision, in its place.
    await store.record_step_result("ses-1", "s1", status="succeeded", output="x", trusted=False, bound=100)
    changed = await store.session_steps("ses-1", since=3)
    assert [(x.step_id, x.rev, x.output) for x in changed] == [("s1", 4, "x")]
    assert [x.step_id for x in await store.session_steps("ses-1")] == ["s1", "s2", "s3"]
    # A refused change takes no revision.
    assert await store.record_step_result("ses-1", "s1", status="failed", output="y", trusted=False,
                                          bound=100) is None  # fmt: skip
    with pytest.raises(Conflict):
        await store.add_step(session_step("ses-1", "s2", 9), record(9, stage="step"))
    s = await store.get_session("ses-1")
    assert s is not None and s.revision == 4
    assert await store.session_steps("ses-1", since=4) == []
    other = await store.get_session("ses-2")
    assert other is not None and other.revision == 0  # sessions count their own changes


# step approvals -----------------------------------------------------------------------------


def step_approval(n: int | str, sid: str = "ses-1", step_id: str = "s1", **kw: Any) -> Approval:
    fields: dict[str, Any] = {
        "id": f"apr-{n}",
        "job_id": None,
        "tenant": "t1",
        "job_hash": None,
        "policy_snapshot": "snap",
        "rule_id": "approve-mail",
        "reason": "external",
        "status": states.APPROVAL_PENDING,
        "requested_at": T0,
        "expires_at": T0 + 900,
        "ttl": 900,
        "requested_by": "idn-a",
        "kind": "step",
        "session_id": sid,
        "step_id": step_id,
        "target": "adapter:bank:send_money",
        "step_hash": f"sh-{n}",
    }
    fields.update(kw)
    return Approval(**fields)


async def waiting_step(store: Store, n: int = 1, nonce: str | None = "nonce-s") -> Approval:
    """A step that waits for approval, stored with its request; approved (holding `nonce`)
    unless `nonce` is None."""
    if await store.get_session("ses-1") is None:
        await store.add_session(session(1))
    a = step_approval(n, step_id=f"s{n}")
    step = session_step(
        "ses-1", f"s{n}", f"w{n}", result="require_approval", rule_id="approve-mail", approval_id=a.id
    )
    await store.add_step(step, record(f"w{n}", stage="step", result="require_approval"), a)
    if nonce is None:
        return a
    update = ApprovalUpdate(
        a.id, "approve", approver_id="idn-b", decided_at=T0 + 1, comment=None, token={"t": n}, nonce=nonce
    )
    moved = await store.update_approval(update, at=T0 + 1, record=record(f"ok{n}", stage="approval"))
    assert moved is not None
    return moved


async def test_a_step_is_stored_with_its_approval_request(store: Store) -> None:
    a = await waiting_step(store, nonce=None)
    got = await store.approval(a.id)
    assert got == a and got.kind == "step" and got.job_id is None
    assert [x.id for x in (await store.list_approvals("t1", "pending")).approvals] == [a.id]
    assert (await store.list_approvals("t2", None)).approvals == []  # another tenant's reads as absent
    assert await store.latest_approval("ses-1") is None  # never taken for a job's approval
    step = await store.get_step("ses-1", "s1")
    assert step is not None and step.approval_id == a.id


async def test_update_approval_is_a_compare_and_set_with_its_record(store: Store) -> None:
    a = await waiting_step(store, nonce=None)
    rejects = [
        store.update_approval(
            ApprovalUpdate(a.id, "reject", approver_id=f"idn-{i}", decided_at=T0 + 1, comment=None),
            at=T0 + 1,
            record=record(f"rej{i}", stage="approval", result="deny"),
        )
        for i in range(4)
    ]
    results = await asyncio.gather(*rejects)
    won = [r for r in results if r is not None]
    assert len(won) == 1 and won[0].status == states.APPROVAL_REJECTED  # decided once
    ids = {r.decision_id for r in (await store.list_decisions("t1", stage="approval")).decisions}
    assert len(ids) == 1  # the refused ones left no record
    late = ApprovalUpdate(
        a.id, "approve", approver_id="idn-b", decided_at=T0 + 2, comment=None, token={"t": 1}, nonce="n-late"
    )
    assert await store.update_approval(late, at=T0 + 2) is None
    got = await store.approval(a.id)
    assert got is not None and got.status == states.APPROVAL_REJECTED and got.nonce is None


async def test_a_step_approval_nonce_settles_its_step_once(store: Store) -> None:
    a = await waiting_step(store)
    settles = [
        store.settle_step(
            "ses-1",
            "s1",
            expected_decision_id="dec-w1",
            consume_nonce=a.nonce,
            record=record(f"allow{i}", stage="step", result="allow"),
        )
        for i in range(4)
    ]
    results = await asyncio.gather(*settles)
    won = [r for r in results if r is not None]
    assert len(won) == 1 and won[0].result == "allow"
    step = await store.get_step("ses-1", "s1")
    assert step is not None and step.decision_id == won[0].decision_id
    got = await store.approval(a.id)
    assert got is not None and got.status == states.APPROVAL_CONSUMED and got.consumed_at == T0
    allowed = [d for d in (await store.list_decisions("t1", stage="step")).decisions if d.result == "allow"]
    assert len(allowed) == 1
    s = await store.get_session("ses-1")
    assert s is not None and s.revision == 2  # decided, then settled once: the losers took none
    assert [(x.step_id, x.rev, x.result) for x in await store.session_steps("ses-1", since=1)] == [
        ("s1", 2, "allow")
    ]


async def test_a_spent_nonce_changes_nothing(store: Store) -> None:
    # The step rolled back to waiting (as a restored row would be): the spent nonce refuses it.
    a = await waiting_step(store, 1)
    assert await store.settle_step(
        "ses-1",
        "s1",
        expected_decision_id="dec-w1",
        consume_nonce=a.nonce,
        record=record("allow1", stage="step"),
    )
    b = await waiting_step(store, 2, nonce="nonce-2")
    replay = await store.settle_step(
        "ses-1",
        "s2",
        expected_decision_id="dec-w2",
        consume_nonce=a.nonce,
        record=record("allow2", stage="step"),
    )
    assert replay is None
    step = await store.get_step("ses-1", "s2")
    assert step is not None and step.result == "require_approval" and step.decision_id == "dec-w2"
    assert await store.decision("dec-allow2") is None
    got = await store.approval(b.id)
    assert got is not None and got.status == states.APPROVAL_APPROVED and got.consumed_at is None


async def test_settle_refuses_a_moved_step_and_a_moved_approval(store: Store) -> None:
    a = await waiting_step(store)
    stale = await store.settle_step(
        "ses-1",
        "s1",
        expected_decision_id="dec-other",
        record=record("x1", stage="step", result="deny"),
        approval=ApprovalUpdate(a.id, "invalidate"),
    )
    assert stale is None  # the step's decision is not the one the caller read
    got = await store.approval(a.id)
    assert got is not None and got.status == states.APPROVAL_APPROVED
    moved_approval = await store.settle_step(
        "ses-1",
        "s1",
        expected_decision_id="dec-w1",
        record=record("x2", stage="step", result="deny"),
        approval=ApprovalUpdate(a.id, "reject"),
    )
    assert moved_approval is None  # `reject` needs a pending approval: all or nothing
    step = await store.get_step("ses-1", "s1")
    assert step is not None and step.decision_id == "dec-w1" and await store.decision("dec-x2") is None
    again = step_approval(9, step_id="s1", step_hash="sh-9")
    fresh = await store.settle_step(
        "ses-1",
        "s1",
        expected_decision_id="dec-w1",
        record=record("x3", stage="step", result="require_approval"),
        approval=ApprovalUpdate(a.id, "supersede"),
        new_approval=again,
    )
    assert fresh is not None and fresh.approval_id == again.id and fresh.decision_id == "dec-x3"
    got = await store.approval(a.id)
    assert got is not None and got.status == states.APPROVAL_STALE
    assert await store.approval(again.id) == again


async def test_step_approvals_are_in_the_audit_log(store: Store, audit_key: SigningKey) -> None:
    a = await waiting_step(store)
    await store.settle_step(
        "ses-1",
        "s1",
        expected_decision_id="dec-w1",
        consume_nonce=a.nonce,
        record=record("allow1", stage="step"),
    )
    entries = await store.audit_entries("tenant:t1")
    types = [(e.type, e.data.get("approval_id")) for e in entries if e.type.startswith("approval.")]
    assert types == [("approval.requested", a.id), ("approval.approved", a.id), ("approval.consumed", a.id)]
    assert any(e.type == "approval.consumed" for e in await store.audit_entries("system"))
    reports = await verify_store(store, {audit_key.key_id: audit_key.verify_key})
    assert all(r.ok for r in reports if r.stream != "(roots)")

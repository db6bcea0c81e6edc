"""Several replicas on one database: the races of `test_store.py`, run across two stores that
share nothing but the database (two connection pools, as two processes would have).

Only drivers made for several processes run here (PostgreSQL); each test gets a fresh database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import services
from test_store import T0, approved, dispatch, identity, record, submitted, waiting_step

from gatehouse.audit.events import AuditEvent
from gatehouse.audit.verify import verify_store
from gatehouse.crypto import SigningKey
from gatehouse.domain import states
from gatehouse.errors import Conflict, Unavailable
from gatehouse.store.base import Store
from gatehouse.store.postgres import PostgresStore
from gatehouse.store.postgres.schema import SCHEMA_VERSION, SchemaTooNew

pytestmark = pytest.mark.anyio

Pair = tuple[PostgresStore, PostgresStore]


@pytest.fixture
async def replicas(audit_key: SigningKey) -> AsyncIterator[Pair]:
    url = services.postgres().new_database()
    a = PostgresStore(url=url, audit_key=audit_key, checkpoint_every=5, pool_size=6)
    b = PostgresStore(url=url, audit_key=audit_key, checkpoint_every=5, pool_size=6)
    # Both migrate at once: the advisory lock lets one build the schema, the other finds it built.
    await asyncio.gather(a.open(), b.open())
    yield a, b
    await asyncio.gather(a.close(), b.close())


async def _verified(store: Store, key: SigningKey) -> None:
    await store.seal_audit()
    reports = await verify_store(store, {key.key_id: key.verify_key})
    assert reports and all(r.ok for r in reports), [r for r in reports if not r.ok]


async def test_two_schedulers_dispatch_each_job_once(replicas: Pair, audit_key: SigningKey) -> None:
    a, b = replicas
    for n in range(20):
        await submitted(a if n % 2 else b, n)

    async def scheduler(store: Store, name: str) -> list[str]:
        won = []
        for j in await store.queued_jobs([""], 50):
            moved = await store.transition(j.id, "dispatch_allow", at=T0 + 1, changes=dispatch(name))
            if moved is not None:
                won.append(j.id)
        return won

    runs = await asyncio.gather(
        *(scheduler(s, f"{tag}{i}") for i in range(3) for s, tag in ((a, "a"), (b, "b")))
    )
    won = [job_id for run in runs for job_id in run]
    assert sorted(won) == sorted(f"job-{n}" for n in range(20))  # each once, none left behind
    for n in range(20):
        stored = await b.get_job(f"job-{n}")
        assert stored is not None and stored.status == states.DISPATCHED and stored.attempts == 1
    await _verified(a, audit_key)


async def test_an_approval_nonce_is_consumed_once_across_replicas(replicas: Pair) -> None:
    a, b = replicas
    _, granted = await approved(a, 1)
    results = await asyncio.gather(
        *(
            s.transition(
                "job-1", "dispatch_allow", at=T0 + 2, changes=dispatch(f"w{n}"), consume_nonce="nonce-1"
            )
            for n in range(4)
            for s in (a, b)
        )
    )
    assert sum(r is not None for r in results) == 1
    used = await b.approval(granted.id)
    assert used is not None and used.status == states.APPROVAL_CONSUMED


async def test_an_idempotency_key_is_mapped_once_across_replicas(replicas: Pair) -> None:
    a, b = replicas

    async def submit(store: Store, n: int) -> str:
        try:
            await submitted(store, n, idempotency_key="key-1")
            return "stored"
        except Conflict as exc:
            assert exc.code == "duplicate_job"
            return "conflict"

    results = await asyncio.gather(*(submit(s, n) for n, s in enumerate([a, b] * 4)))
    assert results.count("stored") == 1
    found = await a.job_by_idempotency_key("idn-a", "key-1")
    assert found is not None and (await b.list_jobs(None)).jobs == [found]


async def test_a_step_decision_is_settled_once_across_replicas(replicas: Pair) -> None:
    a, b = replicas
    waiting = await waiting_step(a)
    results = await asyncio.gather(
        *(
            s.settle_step(
                "ses-1",
                "s1",
                expected_decision_id="dec-w1",
                consume_nonce=waiting.nonce,
                record=record(f"allow-{tag}{i}", stage="step", result="allow"),
            )
            for i in range(3)
            for s, tag in ((a, "a"), (b, "b"))
        )
    )
    won = [r for r in results if r is not None]
    assert len(won) == 1
    got = await b.approval(waiting.id)
    assert got is not None and got.status == states.APPROVAL_CONSUMED
    allowed = [d for d in (await b.list_decisions("t1", stage="step")).decisions if d.result == "allow"]
    assert [d.decision_id for d in allowed] == [won[0].decision_id]


async def test_concurrent_appends_from_two_replicas_keep_one_chain(
    replicas: Pair, audit_key: SigningKey
) -> None:
    a, b = replicas

    async def burst(store: Store, tag: str) -> None:
        await asyncio.gather(
            *(store.append_audit([AuditEvent("t1", "test.event", {"n": f"{tag}{i}"})]) for i in range(40))
        )

    await asyncio.gather(burst(a, "a"), burst(b, "b"), a.seal_audit(), b.seal_audit())
    entries = await a.audit_entries("t1")
    assert [e.seq for e in entries] == list(range(1, 81))
    assert sorted(e.data["n"] for e in entries) == sorted(
        [f"a{i}" for i in range(40)] + [f"b{i}" for i in range(40)]
    )
    await asyncio.gather(a.seal_audit(), b.seal_audit())
    await _verified(b, audit_key)


async def test_a_revocation_on_one_replica_is_seen_by_the_other(replicas: Pair) -> None:
    a, b = replicas
    await a.add_identity(identity("x"), "hash-x")
    assert (await b.identity_by_key_hash("hash-x")) is not None
    assert await a.revoke_identity("idn-x", T0 + 1)
    assert not await b.revoke_identity("idn-x", T0 + 2)  # revoked once
    stored = await b.get_identity("idn-x")
    assert stored is not None and stored.revoked_at == T0 + 1


async def test_a_schema_newer_than_the_code_is_refused(audit_key: SigningKey) -> None:
    url = services.postgres().new_database()
    first = PostgresStore(url=url, audit_key=audit_key)
    await first.open()
    await first._write(
        lambda conn: conn.execute(
            "INSERT INTO schema_migrations (version, description) VALUES ($1, 'from the future')",
            SCHEMA_VERSION + 1,
        )
    )
    await first.close()
    later = PostgresStore(url=url, audit_key=audit_key)
    with pytest.raises(SchemaTooNew) as refused:
        await later.open()
    assert refused.value.code == "schema_too_new" and "upgrade gatehouse" in refused.value.message


async def test_an_unreachable_database_is_unavailable_at_start(audit_key: SigningKey) -> None:
    from harness import free_port

    store = PostgresStore(
        url=f"postgresql://gatehouse:secret@127.0.0.1:{free_port()}/none", audit_key=audit_key
    )
    with pytest.raises(Unavailable) as down:
        await store.open()
    assert down.value.code == "store_unavailable"
    assert "secret" not in down.value.message and "gatehouse:***@127.0.0.1" in down.value.message

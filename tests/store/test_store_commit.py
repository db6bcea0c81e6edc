"""Group commit in the SQLite store: writes queued together share one transaction, each in its
own savepoint, and nobody is answered before the commit that holds their write."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from gatehouse.audit.chain import StreamReport
from gatehouse.audit.events import AuditEvent, current_actor
from gatehouse.audit.verify import verify_store
from gatehouse.domain.identity import Identity
from gatehouse.domain.records import DecisionRecord
from gatehouse.store.sqlite import SQLiteStore


def identity(n: int) -> Identity:
    return Identity(
        id=f"id-{n}",
        name=f"agent-{n}",
        tenant="t1",
        roles=("agent",),
        topics=("job.**",),
        capabilities=(),
        created_at=1.0,
    )


def record(n: int) -> DecisionRecord:
    return DecisionRecord(
        decision_id=f"dec-{n}",
        timestamp=1.0,
        result="allow",
        rule_id="default",
        reason="",
        stage="simulate",
        policy_snapshot=None,
        job_hash=None,
        tenant="t1",
    )


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "g.db"


def other_connection_count(path: Path, table: str) -> int:
    with sqlite3.connect(path) as other:
        return other.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def test_concurrent_writes_share_one_commit_and_are_all_durable(db_path: Path) -> None:
    async def main() -> tuple[int, int]:
        store = SQLiteStore(path=db_path)
        await store.open()
        await asyncio.gather(*(store.add_identity(identity(n), f"hash-{n}") for n in range(50)))
        # Answered means committed: a second connection already sees every row.
        assert other_connection_count(db_path, "identities") == 50
        assert store._commit is not None
        batches, writes = store._commit.batches, store._commit.writes
        await store.close()
        return batches, writes

    batches, writes = run(main())
    assert writes == 50
    assert batches == 1


def test_a_failing_write_is_rolled_back_alone(db_path: Path) -> None:
    async def main() -> list[object]:
        store = SQLiteStore(path=db_path)
        await store.open()
        results = await asyncio.gather(
            store.add_identity(identity(1), "hash-1"),
            store.add_identity(identity(2), "hash-1"),  # same key hash: UNIQUE violation
            store.add_identity(identity(3), "hash-3"),
            return_exceptions=True,
        )
        names = [i.name for i in await store.list_identities("t1")]
        # The failed write left no audit entry behind either (its savepoint was rolled back).
        created = [e for e in await store.audit_entries("system") if e.type == "identity.created"]
        await store.close()
        return [results, names, len(created)]

    results, names, created = run(main())
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], sqlite3.IntegrityError)
    assert names == ["agent-1", "agent-3"]
    assert created == 2


def test_each_write_keeps_its_callers_audit_context(db_path: Path) -> None:
    async def write_as(store: SQLiteStore, actor: str, n: int) -> None:
        current_actor.set(actor)
        await store.add_decision(record(n))

    async def main() -> list[str | None]:
        store = SQLiteStore(path=db_path)
        await store.open()
        await asyncio.gather(*(write_as(store, f"actor-{n}", n) for n in range(5)))
        entries = await store.audit_entries("tenant:t1")
        await store.close()
        return [e.actor for e in entries]

    assert run(main()) == [f"actor-{n}" for n in range(5)]


def test_a_cancelled_caller_s_write_never_happens(db_path: Path) -> None:
    async def main() -> int:
        store = SQLiteStore(path=db_path)
        await store.open()
        doomed = asyncio.ensure_future(store.add_decision(record(1)))
        kept = asyncio.ensure_future(store.add_decision(record(2)))
        await asyncio.sleep(0)  # both are queued, the commit is not run yet
        doomed.cancel()
        await asyncio.gather(doomed, kept, return_exceptions=True)
        count = other_connection_count(db_path, "decisions")
        await store.close()
        return count

    assert run(main()) == 1


def test_the_chain_stays_valid_across_batches_with_failures(db_path: Path) -> None:
    async def main() -> list[StreamReport]:
        store = SQLiteStore(path=db_path)
        await store.open()
        for round_ in range(3):
            await asyncio.gather(
                *(store.add_identity(identity(round_ * 10 + n), f"h-{n % 4}-{round_}") for n in range(8)),
                return_exceptions=True,
            )
        report = await verify_store(store, {}, await store.audit_streams())  # chains only: no key, no roots
        await store.close()
        return report

    reports = run(main())
    assert [r.stream for r in reports] == ["system"]
    assert all(r.ok for r in reports), [r.to_dict() for r in reports]


def test_a_write_rolled_back_after_auditing_leaves_the_audit_head_where_it_was(db_path: Path) -> None:
    def audited_then_failing(store: SQLiteStore) -> object:
        def fn(db: sqlite3.Connection) -> None:
            store._append_audit(db, [AuditEvent("system", "doomed", {"n": 1})])
            raise RuntimeError("changed my mind")

        return store._write(fn)

    async def main() -> list[StreamReport]:
        store = SQLiteStore(path=db_path)
        await store.open()
        await store.add_identity(identity(1), "h1")
        results = await asyncio.gather(
            audited_then_failing(store),  # type: ignore[arg-type]
            store.add_identity(identity(2), "h2"),
            return_exceptions=True,
        )
        assert isinstance(results[0], RuntimeError) and results[1] is None
        await store.add_identity(identity(3), "h3")
        types = [e.type for e in await store.audit_entries("system")]
        assert "doomed" not in types and len(types) == 3
        reports = await verify_store(store, {}, await store.audit_streams())  # chains only: no key, no roots
        await store.close()
        return reports

    assert all(r.ok for r in run(main()))


def test_two_writers_on_one_file_still_chain_correctly(db_path: Path) -> None:
    """A second process on the same data directory is a mistake, but it must not fork the chain."""

    async def main() -> list[StreamReport]:
        a, b = SQLiteStore(path=db_path), SQLiteStore(path=db_path)
        await a.open()
        await b.open()
        for n in range(6):
            writer = a if n % 2 == 0 else b
            await writer.add_identity(identity(n), f"h{n}")
        reports = await verify_store(a, {}, await a.audit_streams())  # chains only: no key, no roots
        entries = await a.audit_entries("system")
        assert [e.seq for e in entries] == [1, 2, 3, 4, 5, 6]
        await a.close()
        await b.close()
        return reports

    assert all(r.ok for r in run(main()))

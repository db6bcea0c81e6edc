"""The decision log in the SQLite store: tenant-scoped queries, filters, the opaque cursor, and the
migration of a data directory made before the log existed."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from gatehouse.domain.records import DecisionRecord
from gatehouse.errors import BadRequest
from gatehouse.store.sqlite import SQLiteStore


def record(
    n: int, *, tenant: str = "t1", stage: str = "submit", result: str = "deny", **kw: Any
) -> DecisionRecord:
    return DecisionRecord(
        decision_id=f"dec-{n:03d}",
        timestamp=1000.0 + n,
        result=result,
        rule_id=kw.pop("rule_id", "deny-x"),
        reason="r",
        stage=stage,
        policy_snapshot="s" * 64,
        job_hash="h",
        tenant=tenant,
        **kw,
    )


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


async def _filled(path: Path) -> SQLiteStore:
    store = SQLiteStore(path=path)
    await store.open()
    for n in range(7):
        await store.add_decision(record(n, request={"topic": "job.exec.shell", "prompt": f"p{n}"}))
    await store.add_decision(record(7, tenant="t2"))
    await store.add_decision(record(8, stage="dispatch", result="allow", rule_id="default", job_id="job-1"))
    return store


def test_pages_walk_the_tenant_log_newest_first_and_stop(tmp_path: Path) -> None:
    async def go() -> None:
        store = await _filled(tmp_path / "g.db")
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            page = await store.list_decisions("t1", stage="submit", limit=3, cursor=cursor)
            pages += 1
            seen += [r.decision_id for r in page.decisions]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert pages == 3
        assert seen == [f"dec-{n:03d}" for n in reversed(range(7))]
        # The request a deny judged comes back as stored.
        first = await store.decision("dec-006", "t1")
        assert first is not None and first.request == {"topic": "job.exec.shell", "prompt": "p6"}
        await store.close()

    run(go())


def test_filters_and_tenant_scope(tmp_path: Path) -> None:
    async def go() -> None:
        store = await _filled(tmp_path / "g.db")
        everything = await store.list_decisions("t1", limit=100)
        assert len(everything.decisions) == 8 and everything.next_cursor is None
        assert {r.tenant for r in everything.decisions} == {"t1"}
        allowed = await store.list_decisions("t1", result="allow")
        assert [r.decision_id for r in allowed.decisions] == ["dec-008"]
        by_rule = await store.list_decisions("t1", rule_id="default")
        assert [r.decision_id for r in by_rule.decisions] == ["dec-008"]
        recent = await store.list_decisions("t1", since=1005.0)
        assert [r.decision_id for r in recent.decisions] == ["dec-008", "dec-006", "dec-005"]
        # Another tenant's record is not found by id, nor listed.
        assert await store.decision("dec-007", "t1") is None
        assert await store.decision("dec-007", "t2") is not None
        assert [r.decision_id for r in (await store.list_decisions("t2")).decisions] == ["dec-007"]
        # A job's records are scoped too.
        assert [r.decision_id for r in await store.decisions("job-1", "t1")] == ["dec-008"]
        assert await store.decisions("job-1", "t2") == []
        await store.close()

    run(go())


@pytest.mark.parametrize("cursor", ["!!", "bm9wZQ", "czEyYQ"])
def test_a_bad_cursor_is_refused(tmp_path: Path, cursor: str) -> None:
    async def go() -> None:
        store = await _filled(tmp_path / "g.db")
        try:
            # A documented error (a 400 at the edge), no longer a bare ValueError.
            with pytest.raises(BadRequest, match="bad cursor") as raised:
                await store.list_decisions("t1", cursor=cursor)
            assert raised.value.code == "invalid_cursor"
        finally:
            await store.close()

    run(go())


def test_an_old_data_dir_is_migrated(tmp_path: Path) -> None:
    """A gatehouse.db from before the decision log (no `request` column, records without a
    tenant) opens, gets the column and index, and its records join their job's tenant."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(
            """
            CREATE TABLE jobs (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
                tenant TEXT NOT NULL, identity_id TEXT NOT NULL, topic TEXT NOT NULL,
                prompt TEXT NOT NULL, labels TEXT NOT NULL, meta TEXT NOT NULL,
                attachments TEXT NOT NULL, status TEXT NOT NULL, job_hash TEXT NOT NULL,
                idempotency_key TEXT, policy_snapshot TEXT, requester_roles TEXT NOT NULL,
                derived TEXT NOT NULL, result TEXT, error TEXT, lease_owner TEXT,
                lease_expires_at REAL, attempts INTEGER NOT NULL DEFAULT 0, remediated_from TEXT,
                created_at REAL NOT NULL, updated_at REAL NOT NULL);
            CREATE TABLE decisions (seq INTEGER PRIMARY KEY AUTOINCREMENT,
                decision_id TEXT NOT NULL UNIQUE, job_id TEXT, tenant TEXT, timestamp REAL NOT NULL,
                result TEXT NOT NULL, rule_id TEXT NOT NULL, reason TEXT NOT NULL,
                stage TEXT NOT NULL, policy_snapshot TEXT, job_hash TEXT,
                remediations TEXT NOT NULL, cached INTEGER NOT NULL,
                fail_mode_applied INTEGER NOT NULL, extra TEXT NOT NULL);
            INSERT INTO jobs (id, tenant, identity_id, topic, prompt, labels, meta, attachments,
                status, job_hash, requester_roles, derived, created_at, updated_at)
                VALUES ('job-old', 'acme', 'idn', 'job.x', '', '{}', '{}', '[]', 'denied', 'h',
                '[]', '{}', 1, 1);
            INSERT INTO decisions (decision_id, job_id, tenant, timestamp, result, rule_id, reason,
                stage, remediations, cached, fail_mode_applied, extra)
                VALUES ('dec-old', 'job-old', NULL, 5, 'deny', 'r', 'why', 'submit', '[]', 0, 0, '{}');
            """
        )

    async def go() -> None:
        store = SQLiteStore(path=path)
        await store.open()
        page = await store.list_decisions("acme")
        assert [r.decision_id for r in page.decisions] == ["dec-old"]
        assert page.decisions[0].request is None
        await store.add_decision(record(1, tenant="acme", request={"topic": "job.x"}))
        assert (await store.decision("dec-001", "acme")).request == {"topic": "job.x"}  # type: ignore[union-attr]
        await store.close()
        reopened = SQLiteStore(path=path)  # a second open finds nothing left to do
        await reopened.open()
        assert len((await reopened.list_decisions("acme")).decisions) == 2
        await reopened.close()

    run(go())
    with sqlite3.connect(path) as db:
        indexes = {r[1] for r in db.execute("PRAGMA index_list(decisions)")}
        assert "decisions_tenant" in indexes

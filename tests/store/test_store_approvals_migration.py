"""A data directory made before step approvals: its approvals table (job ids and hashes NOT NULL,
no `kind`) is copied into the new shape on open, every job approval kept, and step approvals
(no job) can be stored afterwards."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from gatehouse.domain.approvals import new_step_request
from gatehouse.domain.records import DecisionRecord
from gatehouse.domain.sessions import Session, SessionStep
from gatehouse.store.sqlite import SQLiteStore

V4_APPROVALS = """
CREATE TABLE approvals (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, job_id TEXT NOT NULL,
    tenant TEXT NOT NULL, job_hash TEXT NOT NULL, policy_snapshot TEXT, rule_id TEXT NOT NULL,
    reason TEXT NOT NULL, status TEXT NOT NULL, requested_at REAL NOT NULL, expires_at REAL NOT NULL,
    ttl INTEGER NOT NULL, requested_by TEXT NOT NULL, approver_id TEXT, decided_at REAL, comment TEXT,
    token TEXT, nonce TEXT UNIQUE, consumed_at REAL);
INSERT INTO approvals (id, job_id, tenant, job_hash, rule_id, reason, status, requested_at,
    expires_at, ttl, requested_by, approver_id, token, nonce)
    VALUES ('apr-old', 'job-old', 'acme', 'h', 'r', 'why', 'approved', 1, 901, 900, 'idn-a', 'idn-b',
    '{"claims": {}}', 'nonce-old');
PRAGMA user_version = 4;
"""


def test_a_v4_approvals_table_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(V4_APPROVALS)

    async def go() -> None:
        store = SQLiteStore(path=path)
        await store.open()
        old = await store.approval("apr-old")
        assert old is not None and (old.kind, old.job_id, old.nonce) == ("job", "job-old", "nonce-old")
        assert old.token == {"claims": {}} and (await store.latest_approval("job-old")) == old
        await store.add_session(
            Session(id="ses-1", tenant="acme", identity_id="idn-a", task="", created_at=1)
        )
        a = new_step_request(
            tenant="acme",
            session_id="ses-1",
            step_id="s1",
            target="adapter:m:send",
            step_hash="sh",
            requested_by="idn-a",
            rule_id="r",
            reason="why",
            ttl=60,
            snapshot="snap",
            at=2,
        )
        step = SessionStep(
            session_id="ses-1",
            step_id="s1",
            adapter="m",
            action="send",
            params={},
            step_hash="sh",
            decision_id="dec-1",
            result="require_approval",
            rule_id="r",
            created_at=2,
            approval_id=a.id,
        )
        rec = DecisionRecord(
            decision_id="dec-1",
            timestamp=2,
            result="require_approval",
            rule_id="r",
            reason="why",
            stage="step",
            policy_snapshot="snap",
            job_hash=None,
            tenant="acme",
        )
        await store.add_step(step, rec, a)
        assert [x.id for x in (await store.list_approvals("acme", None)).approvals] == ["apr-old", a.id]
        await store.close()

    asyncio.run(go())
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] >= 5
        indexes = {r[1] for r in db.execute("PRAGMA index_list(approvals)")}
        assert {"approvals_job", "approvals_status"} <= indexes

"""Sessions of the step gate in the SQLite driver: sessions, their decided steps and results."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from gatehouse.audit.events import AuditEvent, decision_event
from gatehouse.domain.approvals import Approval
from gatehouse.domain.changes import ApprovalUpdate
from gatehouse.domain.records import DecisionRecord
from gatehouse.domain.sessions import Session, SessionStep, output_size
from gatehouse.errors import Conflict
from gatehouse.store.base import SessionStore
from gatehouse.store.sqlite import rows
from gatehouse.store.sqlite.approvals import approval_ops, nonce_owner, step_approval_events
from gatehouse.store.sqlite.connection import SQLiteBase

__all__ = ["SQLiteSessions"]

_SESSION_COLUMNS = "id, tenant, identity_id, task, created_at, job_id, untrusted_size, bounded, revision"
_STEP_COLUMNS = (
    "session_id, step_id, adapter, action, params, step_hash, decision_id, result, rule_id, "
    "created_at, status, output, trusted, approval_id, rev, claimed_at"
)


def _session(row: tuple[Any, ...]) -> Session:
    id_, tenant, identity_id, task, created_at, job_id, size, bounded, revision = row
    return Session(
        id=id_,
        tenant=tenant,
        identity_id=identity_id,
        task=task,
        created_at=created_at,
        job_id=job_id,
        untrusted_size=size,
        bounded=bool(bounded),
        revision=revision,
    )


def _step_values(step: SessionStep, revision: int) -> tuple[Any, ...]:
    """A step's row (`_STEP_COLUMNS`), stored at session revision `revision`."""
    return (
        step.session_id,
        step.step_id,
        step.adapter,
        step.action,
        rows.dumps(step.params),
        step.step_hash,
        step.decision_id,
        step.result,
        step.rule_id,
        step.created_at,
        step.status,
        None if step.output is None else rows.dumps(step.output),
        int(step.trusted),
        step.approval_id,
        revision,
        step.claimed_at,
    )


def _step(row: tuple[Any, ...]) -> SessionStep:
    (sid, step_id, adapter, action, params, step_hash, decision_id, result, rule_id, created_at, status,
     output, trusted, approval_id, rev, claimed_at) = row  # fmt: skip
    return SessionStep(
        session_id=sid,
        step_id=step_id,
        adapter=adapter,
        action=action,
        params=rows.loads(params),
        step_hash=step_hash,
        decision_id=decision_id,
        result=result,
        rule_id=rule_id,
        created_at=created_at,
        status=status,
        output=None if output is None else rows.loads(output),
        trusted=bool(trusted),
        approval_id=approval_id,
        rev=rev,
        claimed_at=claimed_at,
    )


class SQLiteSessions(SQLiteBase, SessionStore):
    async def add_session(self, session: Session) -> None:
        def add(db: sqlite3.Connection) -> None:
            db.execute(
                f"INSERT INTO sessions ({_SESSION_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    session.id,
                    session.tenant,
                    session.identity_id,
                    session.task,
                    session.created_at,
                    session.job_id,
                    session.untrusted_size,
                    int(session.bounded),
                    session.revision,
                ),
            )

        try:
            await self._write(add)
        except sqlite3.IntegrityError:
            raise Conflict(f"session `{session.id}` exists already", code="duplicate_session") from None

    async def get_session(self, session_id: str, tenant: str | None = None) -> Session | None:
        sql, args = f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE id = ?", [session_id]
        if tenant is not None:
            sql += " AND tenant = ?"
            args.append(tenant)
        row = self.db.execute(sql, args).fetchone()
        return _session(row) if row else None

    async def add_step(
        self, step: SessionStep, record: DecisionRecord, approval: Approval | None = None
    ) -> int:
        def add(db: sqlite3.Connection) -> int:
            revision = _bump(db, step.session_id)
            if revision is None:
                raise ValueError(f"no session `{step.session_id}`")
            db.execute(
                f"INSERT INTO session_steps ({_STEP_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                _step_values(step, revision),
            )
            rows.insert_record(db, record)
            events = decision_event(record)
            if approval is not None:
                rows.insert_approval(db, approval)
                events += step_approval_events(db, [approval.id], approval.id)
            self._append_audit(db, events)
            return revision

        try:
            return await self._write(add)
        except sqlite3.IntegrityError:
            raise Conflict(f"step `{step.step_id}` is decided already", code="duplicate_step") from None

    async def settle_step(
        self,
        session_id: str,
        step_id: str,
        *,
        expected_decision_id: str,
        record: DecisionRecord,
        approval: ApprovalUpdate | None = None,
        consume_nonce: str | None = None,
        new_approval: Approval | None = None,
    ) -> SessionStep | None:
        def settle(db: sqlite3.Connection) -> None:
            cur = db.execute(
                "UPDATE session_steps SET decision_id = ?, result = ?, rule_id = ?, "
                "approval_id = COALESCE(?, approval_id), rev = ? "
                "WHERE session_id = ? AND step_id = ? AND decision_id = ?",
                (
                    record.decision_id,
                    record.result,
                    record.rule_id,
                    new_approval.id if new_approval is not None else None,
                    _bump(db, session_id),
                    session_id,
                    step_id,
                    expected_decision_id,
                ),
            )
            if cur.rowcount != 1:
                raise _NoChange  # decided again by somebody else first
            touched = nonce_owner(db, consume_nonce)
            events = approval_ops(db, new_approval, approval, consume_nonce, record.timestamp)
            if events is None:
                raise _NoChange  # roll the step back with it: a used nonce, a moved approval
            rows.insert_record(db, record)
            events += decision_event(record)
            if approval is not None:
                touched.append(approval.approval_id)
            if new_approval is not None:
                touched.append(new_approval.id)
            events += step_approval_events(
                db, list(dict.fromkeys(touched)), new_approval.id if new_approval else None
            )
            self._append_audit(db, events)

        try:
            await self._write(settle)
        except _NoChange:
            return None
        return await self.get_step(session_id, step_id)

    async def get_step(self, session_id: str, step_id: str) -> SessionStep | None:
        row = self.db.execute(
            f"SELECT {_STEP_COLUMNS} FROM session_steps WHERE session_id = ? AND step_id = ?",
            (session_id, step_id),
        ).fetchone()
        return _step(row) if row else None

    async def session_steps(self, session_id: str, since: int = 0) -> list[SessionStep]:
        found = self.db.execute(
            f"SELECT {_STEP_COLUMNS} FROM session_steps WHERE session_id = ? AND rev > ? ORDER BY seq",
            (session_id, since),
        )
        return [_step(r) for r in found.fetchall()]

    async def claim_step(self, session_id: str, step_id: str, at: float) -> bool:
        def claim(db: sqlite3.Connection) -> bool:
            cur = db.execute(
                "UPDATE session_steps SET claimed_at = ? WHERE session_id = ? AND step_id = ? "
                "AND result = 'allow' AND status IS NULL AND claimed_at IS NULL",
                (at, session_id, step_id),
            )
            return cur.rowcount == 1

        return await self._write(claim)

    async def record_step_result(
        self,
        session_id: str,
        step_id: str,
        *,
        status: str,
        output: Any,
        trusted: bool,
        bound: int,
        record: DecisionRecord | None = None,
        events: Sequence[AuditEvent] = (),
    ) -> SessionStep | None:
        size = output_size(output)

        def change(db: sqlite3.Connection) -> SessionStep | None:
            # The session's untrusted size, bound and revision in one statement (SQLite reads
            # every SET expression from the row as it was): an untrusted output of a session
            # not bounded yet adds its size, and bounds the session once past `bound`.
            srow = db.execute(
                _MOVE_SESSION, {"trusted": trusted, "size": size, "bound": bound, "id": session_id}
            ).fetchone()
            if srow is None:
                return None
            # Kept unless trusted, or the session is bounded now (before, or by this output).
            kept = rows.dumps(output) if not trusted and not srow[0] else None
            row = db.execute(
                "UPDATE session_steps SET status = ?, output = ?, trusted = ?, rev = ? "
                f"WHERE session_id = ? AND step_id = ? AND status IS NULL RETURNING {_STEP_COLUMNS}",
                (status, kept, int(trusted), srow[1], session_id, step_id),
            ).fetchone()
            if row is None:
                # Roll the session's count back with the savepoint: nothing happened.
                raise _NoChange
            appended = list(events)
            if record is not None:
                rows.insert_record(db, record)
                appended = decision_event(record) + appended
            self._append_audit(db, appended)
            return _step(row)

        try:
            return await self._write(change)
        except _NoChange:
            return None


class _NoChange(Exception):
    pass


_MOVE_SESSION = (
    "UPDATE sessions SET "
    "untrusted_size = CASE WHEN :trusted OR bounded THEN untrusted_size ELSE untrusted_size + :size END, "
    "bounded = CASE WHEN :trusted OR bounded THEN bounded ELSE untrusted_size + :size > :bound END, "
    "revision = revision + 1 WHERE id = :id RETURNING bounded, revision"
)


def _bump(db: sqlite3.Connection, session_id: str) -> int | None:
    """The session's next revision, taken in the writing transaction (None: no such session).
    A change that then fails rolls it back with the rest of the savepoint."""
    row = db.execute(
        "UPDATE sessions SET revision = revision + 1 WHERE id = ? RETURNING revision", (session_id,)
    ).fetchone()
    return None if row is None else int(row[0])

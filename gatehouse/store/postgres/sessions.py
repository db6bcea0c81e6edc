"""Sessions of the step gate in the PostgreSQL driver: sessions, their decided steps and results.

Every change to a session's steps takes the session's next revision with
`UPDATE sessions ... RETURNING revision`, which also locks the session row: changes to one
session's steps are serialised across replicas, the revisions they take have no gaps or
repeats, and a step's decision is settled (its nonce consumed) once.
"""

from __future__ import annotations

import contextvars
from collections.abc import Sequence
from functools import cached_property
from typing import Any, NamedTuple

import asyncpg

from gatehouse.audit.events import AuditEvent, decision_event
from gatehouse.domain.approvals import Approval
from gatehouse.domain.changes import ApprovalUpdate
from gatehouse.domain.records import DecisionRecord
from gatehouse.domain.sessions import Session, SessionStep, output_size
from gatehouse.errors import Conflict
from gatehouse.store.base import SessionStore
from gatehouse.store.postgres import rows as pgrows
from gatehouse.store.postgres.approvals import approval_ops, nonce_owner, step_approval_events
from gatehouse.store.postgres.connection import PostgresBase
from gatehouse.store.postgres.group import GroupCommit
from gatehouse.store.sqlite import rows
from gatehouse.store.sqlite.sessions import _SESSION_COLUMNS, _STEP_COLUMNS, _session, _step, _step_values

__all__ = ["PostgresSessions"]


class _NoChange(Exception):
    pass


class _NoSession(Exception):
    """A step of a batch names a session that does not exist."""


class _NewResult(NamedTuple):
    session_id: str
    step_id: str
    status: str
    output: Any
    size: int  # what the output weighs against the session's bound
    trusted: bool
    bound: int
    record: DecisionRecord | None
    events: tuple[AuditEvent, ...]
    context: contextvars.Context  # the reporting request's (its audit entries' actor, request id)


class _NewStep(NamedTuple):
    step: SessionStep
    record: DecisionRecord
    approval: Approval | None
    context: contextvars.Context  # the deciding request's (its audit entries' actor, request id)


# Each session of a batch takes as many revisions as it has steps there, its row locked (the
# sessions in id order, so two replicas' batches lock them in the same order).
_BUMP_MANY = (
    "UPDATE sessions s SET revision = s.revision + c.n "
    "FROM (SELECT * FROM unnest($1::text[], $2::int[]) AS u(id, n) ORDER BY id) AS c "
    "WHERE s.id = c.id RETURNING s.id, s.revision"
)
# Results reported together (`_record_results`): the sessions locked in id order, the steps
# without a result locked, the sessions moved, the steps set (one statement each).
_LOCK_SESSIONS = (
    "SELECT id, untrusted_size, bounded, revision FROM sessions WHERE id = ANY($1::text[]) "
    "ORDER BY id FOR UPDATE"
)
_LOCK_OPEN_STEPS = (
    "SELECT t.session_id, t.step_id FROM session_steps t "
    "JOIN unnest($1::text[], $2::text[]) AS c(session_id, step_id) "
    "ON t.session_id = c.session_id AND t.step_id = c.step_id WHERE t.status IS NULL FOR UPDATE OF t"
)
_MOVE_SESSIONS = (
    "UPDATE sessions s SET untrusted_size = c.size, bounded = c.bounded, revision = c.revision "
    "FROM unnest($1::text[], $2::bigint[], $3::int[], $4::bigint[]) AS c(id, size, bounded, revision) "
    "WHERE s.id = c.id"
)
_SET_RESULTS = (
    "UPDATE session_steps t SET status = c.status, output = c.output, trusted = c.trusted, rev = c.rev "
    "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::bigint[]) "
    "AS c(session_id, step_id, status, output, trusted, rev) "
    "WHERE t.session_id = c.session_id AND t.step_id = c.step_id "
    f"RETURNING {', '.join('t.' + c for c in _STEP_COLUMNS.split(', '))}"
)
_INSERT_STEP = f"INSERT INTO session_steps ({_STEP_COLUMNS}) VALUES ({pgrows.placeholders(16)})"


async def _bump(conn: asyncpg.Connection, session_id: str) -> int | None:
    """The session's next revision, taken (and the session row locked) in this transaction."""
    found = await conn.fetchval(
        "UPDATE sessions SET revision = revision + 1 WHERE id = $1 RETURNING revision", session_id
    )
    return None if found is None else int(found)


class PostgresSessions(PostgresBase, SessionStore):
    async def add_session(self, session: Session) -> None:
        async def add(conn: asyncpg.Connection) -> None:
            await conn.execute(
                f"INSERT INTO sessions ({_SESSION_COLUMNS}) VALUES ({pgrows.placeholders(9)})",
                session.id,
                session.tenant,
                session.identity_id,
                session.task,
                session.created_at,
                session.job_id,
                session.untrusted_size,
                int(session.bounded),
                session.revision,
            )

        try:
            await self._write(add)
        except asyncpg.UniqueViolationError:
            raise Conflict(f"session `{session.id}` exists already", code="duplicate_session") from None

    async def get_session(self, session_id: str, tenant: str | None = None) -> Session | None:
        args = pgrows.Args(session_id)
        sql = f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE id = $1"
        if tenant is not None:
            sql += f" AND tenant = {args.add(tenant)}"
        row = await self._fetchrow(sql, *args.values)
        return _session(tuple(row)) if row else None

    @cached_property
    def _new_steps(self) -> GroupCommit[_NewStep, int]:
        # A duplicate step or a missing session fails the batch; each step then goes alone.
        return GroupCommit(self._add_steps, alone=(asyncpg.UniqueViolationError, _NoSession))

    async def add_step(
        self, step: SessionStep, record: DecisionRecord, approval: Approval | None = None
    ) -> int:
        try:
            return await self._new_steps(_NewStep(step, record, approval, contextvars.copy_context()))
        except asyncpg.UniqueViolationError:
            raise Conflict(f"step `{step.step_id}` is decided already", code="duplicate_step") from None
        except _NoSession:
            raise ValueError(f"no session `{step.session_id}`") from None

    async def _add_steps(self, new: list[_NewStep]) -> list[int]:
        """One transaction for the steps decided together (`group`, as submits are): each
        session's revisions taken at once, the steps, their decision records and approvals, the
        audit entries in the context of the request that made each."""

        async def add(conn: asyncpg.Connection) -> list[int]:
            counts: dict[str, int] = {}
            for n in new:
                counts[n.step.session_id] = counts.get(n.step.session_id, 0) + 1
            found = await conn.fetch(_BUMP_MANY, sorted(counts), [counts[k] for k in sorted(counts)])
            last = {r[0]: int(r[1]) for r in found}
            if len(last) < len(counts):
                raise _NoSession()
            # A session's steps take its new revisions in the order they came.
            following = {sid: last[sid] - counts[sid] + 1 for sid in counts}
            revisions = []
            for n in new:
                revisions.append(following[n.step.session_id])
                following[n.step.session_id] += 1
            await conn.executemany(
                _INSERT_STEP, [_step_values(n.step, rev) for n, rev in zip(new, revisions, strict=True)]
            )
            await pgrows.insert_records(conn, [n.record for n in new])
            groups: list[tuple[contextvars.Context | None, Sequence[AuditEvent]]] = []
            for n in new:
                events = decision_event(n.record)
                if n.approval is not None:
                    await pgrows.insert_approval(conn, n.approval)
                    events += await step_approval_events(conn, [n.approval.id], n.approval.id)
                groups.append((n.context, events))
            await self._append_audit_groups(conn, groups)
            return revisions

        return await self._write(add)

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
        async def settle(conn: asyncpg.Connection) -> SessionStep:
            revision = await _bump(conn, session_id)
            row = await conn.fetchrow(
                "UPDATE session_steps SET decision_id = $1, result = $2, rule_id = $3, "
                "approval_id = COALESCE($4, approval_id), rev = $5 "
                f"WHERE session_id = $6 AND step_id = $7 AND decision_id = $8 RETURNING {_STEP_COLUMNS}",
                record.decision_id,
                record.result,
                record.rule_id,
                new_approval.id if new_approval is not None else None,
                revision,
                session_id,
                step_id,
                expected_decision_id,
            )
            if row is None:
                raise _NoChange  # decided again by somebody else first
            touched = await nonce_owner(conn, consume_nonce)
            events = await approval_ops(conn, new_approval, approval, consume_nonce, record.timestamp)
            if events is None:
                raise _NoChange  # roll the step back with it: a used nonce, a moved approval
            await pgrows.insert_record(conn, record)
            events += decision_event(record)
            if approval is not None:
                touched.append(approval.approval_id)
            if new_approval is not None:
                touched.append(new_approval.id)
            events += await step_approval_events(
                conn, list(dict.fromkeys(touched)), new_approval.id if new_approval else None
            )
            await self._append_audit(conn, events)
            return _step(tuple(row))

        try:
            return await self._write(settle)
        except _NoChange:
            return None

    async def get_step(self, session_id: str, step_id: str) -> SessionStep | None:
        row = await self._fetchrow(
            f"SELECT {_STEP_COLUMNS} FROM session_steps WHERE session_id = $1 AND step_id = $2",
            session_id,
            step_id,
        )
        return _step(tuple(row)) if row else None

    async def session_steps(self, session_id: str, since: int = 0) -> list[SessionStep]:
        found = await self._fetch(
            f"SELECT {_STEP_COLUMNS} FROM session_steps WHERE session_id = $1 AND rev > $2 ORDER BY seq",
            session_id,
            since,
        )
        return [_step(tuple(r)) for r in found]

    async def claim_step(self, session_id: str, step_id: str, at: float) -> bool:
        async def claim(conn: asyncpg.Connection) -> bool:
            # The row lock of the UPDATE serialises two claimants: the second re-checks the
            # condition after the first commits and finds `claimed_at` set.
            done = await conn.execute(
                "UPDATE session_steps SET claimed_at = $1 WHERE session_id = $2 AND step_id = $3 "
                "AND result = 'allow' AND status IS NULL AND claimed_at IS NULL",
                at,
                session_id,
                step_id,
            )
            return bool(done == "UPDATE 1")

        return await self._write(claim)

    @cached_property
    def _new_results(self) -> GroupCommit[_NewResult, SessionStep | None]:
        return GroupCommit(self._record_results, alone=(asyncpg.UniqueViolationError,))

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
        new = _NewResult(session_id, step_id, status, output, output_size(output), trusted, bound, record,
                         tuple(events), contextvars.copy_context())  # fmt: skip
        return await self._new_results(new)

    async def _record_results(self, new: list[_NewResult]) -> list[SessionStep | None]:
        """One transaction for the results reported together (`group`, as step decisions are):
        the sessions and the steps still without a result locked, each session's kept size and
        revisions advanced through its results in the order they came, the steps set, the
        output decisions stored and audited. A result that cannot be set (no such session, or
        its step has a result already or does not exist) answers None and changes nothing."""

        async def change(conn: asyncpg.Connection) -> list[SessionStep | None]:
            ids = sorted({n.session_id for n in new})
            found = await conn.fetch(_LOCK_SESSIONS, ids)
            state = {r[0]: [int(r[1]), bool(r[2]), int(r[3])] for r in found}  # size, bounded, revision
            pairs = [(n.session_id, n.step_id) for n in new if n.session_id in state]
            open_steps = {
                (r[0], r[1])
                for r in await conn.fetch(_LOCK_OPEN_STEPS, [p[0] for p in pairs], [p[1] for p in pairs])
            }
            changes: list[tuple[Any, ...]] = []
            changing: list[_NewResult] = []
            answers: list[tuple[str, str] | None] = []  # per result: the step it sets, if any
            for n in new:
                key = (n.session_id, n.step_id)
                if key not in open_steps:
                    # No such session or step, or it has a result (maybe from this batch).
                    answers.append(None)
                    continue
                open_steps.discard(key)
                answers.append(key)
                size, bounded, revision = state[n.session_id]
                kept: str | None = None
                if not n.trusted and not bounded:
                    size += n.size
                    bounded = size > n.bound
                    if not bounded:
                        kept = rows.dumps(n.output)
                revision += 1
                state[n.session_id] = [size, bounded, revision]
                changes.append((n.session_id, n.step_id, n.status, kept, int(n.trusted), revision))
                changing.append(n)
            if not changes:
                return [None] * len(new)
            moved = sorted({c[0] for c in changes})
            await conn.execute(
                _MOVE_SESSIONS,
                moved,
                [state[m][0] for m in moved],
                [int(state[m][1]) for m in moved],
                [state[m][2] for m in moved],
            )
            columns = [list(c) for c in zip(*changes, strict=True)]
            stepped = {(r[0], r[1]): _step(tuple(r)) for r in await conn.fetch(_SET_RESULTS, *columns)}
            records = [n.record for n in changing if n.record is not None]
            if records:
                await pgrows.insert_records(conn, records)
            await self._append_audit_groups(
                conn,
                [
                    (n.context, [*(decision_event(n.record) if n.record is not None else []), *n.events])
                    for n in changing
                ],
            )
            return [stepped[key] if key is not None else None for key in answers]

        return await self._write(change)

"""`MemoryStore`: the whole `Store` interface in process memory, with the drivers' semantics.

A real twin, not a mock: the same compare-and-set transitions (through `changes.plan_job` and the
state tables), a nonce consumed once, one job per idempotency key, tenant filters, cursors, and an
audit log chained and signed by the same `AuditWriter`. `tests/contract/test_store.py` runs the
same suite on it and on SQLite, so anything that passes here behaves the same on disk.

Theory of operation: each write yields to the event loop once (as a queued group-commit write
does), then runs without awaiting: on one event loop that makes it atomic, the memory analogue of
a transaction. Every check comes before the first change, and the audit append comes last, so a
refused or failing write leaves nothing behind. Values are deep-copied on the way in, as a
database would serialise them, so a caller's later mutation never reaches the stored state.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, TypeVar

from gatehouse.audit.chain import Checkpoint, Entry, Root
from gatehouse.audit.events import (
    AuditEvent,
    approval_consumed_event,
    approval_event,
    contained_event,
    decision_event,
    identity_created_event,
    identity_revoked_event,
    job_submitted_event,
    lifted_event,
    policy_installed_event,
    state_event,
)
from gatehouse.audit.witness import Witness
from gatehouse.audit.writer import AuditWriter, Head, HeadMoved
from gatehouse.crypto import SigningKey
from gatehouse.domain import states
from gatehouse.domain.approvals import STEP, Approval
from gatehouse.domain.changes import NO_CHANGES, ApprovalUpdate, JobChanges, plan_job
from gatehouse.domain.containment import Containment
from gatehouse.domain.identity import Identity
from gatehouse.domain.jobs import Job
from gatehouse.domain.records import DecisionRecord
from gatehouse.domain.sessions import Session, SessionStep, output_size
from gatehouse.domain.shadow import Disagreement
from gatehouse.domain.tools import ToolPin
from gatehouse.errors import Conflict
from gatehouse.store._cursor import decode_cursor, encode_cursor
from gatehouse.store.base import ApprovalPage, DecisionPage, JobPage, PolicyRow, Store
from gatehouse.store.memory_broker import MemoryBrokerConcerns

__all__ = ["MemoryStore"]

T = TypeVar("T")


class _Sink:
    """The audit lists, as the writer sees them."""

    def __init__(self, store: MemoryStore) -> None:
        self.entries = store._audit
        self.checkpoints = store._checkpoints
        self.roots = store._roots

    def head(self, stream: str) -> Head | None:
        entries = self.entries.get(stream)
        return Head(entries[-1].seq, entries[-1].hash) if entries else None

    def insert_entry(self, entry: Entry, data_json: str) -> None:
        entries = self.entries.setdefault(entry.stream, [])
        if entry.seq != len(entries) + 1:
            raise HeadMoved(entry.stream)
        entries.append(entry)

    def insert_checkpoint(self, checkpoint: Checkpoint) -> None:
        self.checkpoints.setdefault(checkpoint.stream, []).append(checkpoint)

    def unsealed(self) -> list[tuple[str, Head]]:
        out = []
        for stream in sorted(self.entries):
            last = self.entries[stream][-1]
            signed = self.checkpoints.get(stream, [])
            if last.seq > max((c.seq for c in signed), default=0):
                out.append((stream, Head(last.seq, last.hash)))
        return out

    def last_checkpoint(self, stream: str) -> Checkpoint | None:
        signed = self.checkpoints.get(stream)
        return signed[-1] if signed else None

    def last_checkpoints(self) -> dict[str, Checkpoint]:
        return {stream: signed[-1] for stream, signed in self.checkpoints.items() if signed}

    def last_root(self) -> Root | None:
        return self.roots[-1] if self.roots else None

    def insert_root(self, root: Root) -> None:
        self.roots.append(root)


class MemoryStore(MemoryBrokerConcerns, Store):
    def __init__(
        self,
        *,
        audit_key: SigningKey | None = None,
        checkpoint_every: int = 100,
        audit: bool = True,
        audit_witness: Witness | None = None,
    ) -> None:
        # Every append reads the head from the lists: there is no cache to keep right.
        self.writer = AuditWriter(
            key=audit_key,
            checkpoint_every=checkpoint_every,
            enabled=audit,
            single_writer=False,
            witness=audit_witness,
        )
        self._identities: dict[str, Identity] = {}
        self._key_hashes: dict[str, str] = {}  # key hash -> identity id
        self._containments: dict[str, Containment] = {}
        self._jobs: dict[str, Job] = {}
        self._idempotency: dict[tuple[str, str], str] = {}
        self._seq = 0
        self._records: list[tuple[int, DecisionRecord]] = []
        self._record_ids: set[str] = set()
        self._approvals: dict[str, tuple[int, Approval]] = {}
        self._nonces: dict[str, str] = {}  # nonce -> approval id
        self._audit: dict[str, list[Entry]] = {}
        self._checkpoints: dict[str, list[Checkpoint]] = {}
        self._roots: list[Root] = []
        self._policies: list[PolicyRow] = []
        self._shadow: PolicyRow | None = None
        self._disagreements: list[Disagreement] = []
        self._sessions: dict[str, Session] = {}
        self._steps: dict[str, dict[str, SessionStep]] = {}  # session id -> step id -> step
        self._pins: dict[tuple[str, str], ToolPin] = {}  # (adapter, tool) -> pin
        self._secrets = {}  # (tenant, name) -> sealed secret (`memory_broker`)
        self._credentials = {}  # jti -> issued credential
        self._open = False

    async def open(self) -> None:
        self._open = True

    async def close(self) -> None:
        if self._open and self.writer.enabled:
            self.writer.seal(_Sink(self), final=True)
            self.writer.committed()
        if self.writer.witness is not None:
            self.writer.witness.close()
        self._open = False

    async def _turn(self) -> None:
        """Where a write waits for its commit: concurrent writers interleave here, never inside."""
        assert self._open, "store is not open"
        await asyncio.sleep(0)

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _append(self, events: Sequence[AuditEvent]) -> None:
        self.writer.append(events, _Sink(self))
        self.writer.committed()  # a write here is its own transaction: done once it returns

    # identities -----------------------------------------------------------------------------
    async def add_identity(self, identity: Identity, key_hash: str) -> None:
        await self._turn()
        if identity.id in self._identities or key_hash in self._key_hashes:
            raise Conflict(
                f"identity `{identity.id}` or its key is stored already", code="duplicate_identity"
            )
        self._identities[identity.id] = identity
        self._key_hashes[key_hash] = identity.id
        self._append([identity_created_event(identity)])

    async def identity_by_key_hash(self, key_hash: str) -> Identity | None:
        identity_id = self._key_hashes.get(key_hash)
        return self._identities.get(identity_id) if identity_id is not None else None

    async def get_identity(self, identity_id: str) -> Identity | None:
        return self._identities.get(identity_id)

    async def list_identities(self, tenant: str | None) -> list[Identity]:
        found = [i for i in self._identities.values() if tenant is None or i.tenant == tenant]
        return sorted(found, key=lambda i: i.created_at)

    async def revoke_identity(self, identity_id: str, at: float) -> bool:
        await self._turn()
        identity = self._identities.get(identity_id)
        if identity is None or identity.revoked_at is not None:
            return False
        self._identities[identity_id] = replace(identity, revoked_at=at)
        self._append([identity_revoked_event(identity_id)])
        return True

    # containments ---------------------------------------------------------------------------
    async def add_containment(self, containment: Containment) -> None:
        await self._turn()
        c = containment
        taken = c.id in self._containments or any(
            o.kind == c.kind and o.target == c.target and o.lifted_at is None
            for o in self._containments.values()
        )
        if taken:
            raise Conflict(f"{c.kind} `{c.target}` is already contained", code="already_contained")
        self._containments[c.id] = c
        self._append([contained_event(c)])

    async def lift_containment(self, containment_id: str, *, at: float, by: str) -> Containment | None:
        await self._turn()
        c = self._containments.get(containment_id)
        if c is None or c.lifted_at is not None:
            return None
        lifted = replace(c, lifted_at=at, lifted_by=by)
        self._containments[c.id] = lifted
        self._append([lifted_event(lifted)])
        return lifted

    async def containments(self, *, active_only: bool) -> list[Containment]:
        found = [c for c in self._containments.values() if not active_only or c.lifted_at is None]
        return sorted(found, key=lambda c: c.created_at)

    # jobs -----------------------------------------------------------------------------------
    async def insert_job(self, job: Job, record: DecisionRecord, approval: Approval | None = None) -> Job:
        await self._turn()
        key = (job.identity_id, job.idempotency_key) if job.idempotency_key is not None else None
        if (
            job.id in self._jobs
            or (key is not None and key in self._idempotency)
            or record.decision_id in self._record_ids
            or (approval is not None and approval.id in self._approvals)
        ):
            raise Conflict(f"job `{job.id}` conflicts with a stored one", code="duplicate_job")
        stored = copy.deepcopy(job).evolve(seq=self._next_seq())
        self._jobs[job.id] = stored
        if key is not None:
            self._idempotency[key] = job.id
        self._add_record(record)
        if approval is not None:
            self._approvals[approval.id] = (self._next_seq(), copy.deepcopy(approval))
            if approval.nonce is not None:
                self._nonces[approval.nonce] = approval.id
        self._append([job_submitted_event(job), *decision_event(record)])
        return stored

    async def get_job(self, job_id: str, tenant: str | None = None) -> Job | None:
        job = self._jobs.get(job_id)
        return job if job is not None and (tenant is None or job.tenant == tenant) else None

    async def job_by_idempotency_key(self, identity_id: str, key: str) -> Job | None:
        job_id = self._idempotency.get((identity_id, key))
        return self._jobs.get(job_id) if job_id is not None else None

    async def list_jobs(
        self,
        tenant: str | None,
        *,
        status: str | None = None,
        topic: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> JobPage:
        before = decode_cursor(cursor) if cursor else None
        found = [
            j
            for j in sorted(self._jobs.values(), key=lambda j: -j.seq)
            if (tenant is None or j.tenant == tenant)
            and (not status or j.status == status)
            and (not topic or j.topic == topic)
            and (before is None or j.seq < before)
        ]
        jobs = found[:limit]
        return JobPage(jobs=jobs, next_cursor=encode_cursor(jobs[-1].seq) if len(found) > limit else None)

    async def transition(
        self,
        job_id: str,
        event: str,
        *,
        at: float,
        record: DecisionRecord | None = None,
        changes: JobChanges = NO_CHANGES,
        new_approval: Approval | None = None,
        approval: ApprovalUpdate | None = None,
        consume_nonce: str | None = None,
    ) -> Job | None:
        if not states.sources(event):
            raise ValueError(f"unknown event `{event}`")
        await self._turn()
        job = self._jobs.get(job_id)
        if job is None or job.status not in states.sources(event):
            return None
        moved, values = plan_job(job, event, copy.deepcopy(changes), at)
        # Every approval change is checked before anything is written: all or nothing.
        planned = self._plan_approvals(new_approval, approval, consume_nonce, at)
        if planned is None:
            return None
        staged, events = planned
        if record is not None and record.decision_id in self._record_ids:
            raise Conflict(f"decision `{record.decision_id}` is stored already", code="duplicate_decision")
        # commit
        self._jobs[job_id] = moved
        self._commit_approvals(staged)
        if record is not None:
            self._add_record(record)
            events += decision_event(record)
        events.append(state_event(job, job.status, moved.status, event, values, row=moved))
        self._append(events)
        return moved

    def _plan_approvals(
        self,
        new_approval: Approval | None,
        approval: ApprovalUpdate | None,
        consume_nonce: str | None,
        at: float,
    ) -> tuple[dict[str, Approval], list[AuditEvent]] | None:
        """The approvals as the changes would leave them, and their audit events; None when a
        compare-and-set fails (nothing may be written then)."""
        staged: dict[str, Approval] = {}
        events: list[AuditEvent] = []
        if consume_nonce is not None:
            found = self._approvals.get(self._nonces.get(consume_nonce, ""))
            if found is None or found[1].consumed_at is not None:
                return None  # replayed: the nonce was used already
            current = found[1]
            if current.status != states.approval_source("consume"):
                return None
            staged[current.id] = current.evolve(
                status=states.approval_next(current.status, "consume"), consumed_at=at
            )
            events.append(approval_consumed_event(consume_nonce))
        if approval is not None:
            stored = self._approvals.get(approval.approval_id)
            target = staged.get(approval.approval_id) or (stored[1] if stored else None)
            if target is None or target.status != approval.expected:
                return None
            values_ = approval.values()
            nonce = values_.get("nonce")
            if nonce is not None and self._nonces.get(nonce, target.id) != target.id:
                raise Conflict("approval nonce is stored already", code="duplicate_nonce")
            staged[target.id] = target.evolve(**copy.deepcopy(values_))
        if new_approval is not None:
            if new_approval.id in self._approvals or new_approval.id in staged:
                raise Conflict(f"approval `{new_approval.id}` is stored already", code="duplicate_approval")
            staged[new_approval.id] = copy.deepcopy(new_approval)
        return staged, events

    def _commit_approvals(self, staged: dict[str, Approval]) -> None:
        for approval_id, value in staged.items():
            seq = self._approvals[approval_id][0] if approval_id in self._approvals else self._next_seq()
            self._approvals[approval_id] = (seq, value)
            if value.nonce is not None:
                self._nonces[value.nonce] = approval_id

    async def queued_jobs(
        self, prefixes: Sequence[str], limit: int, *, tenant: str | None = None
    ) -> list[Job]:
        any_topic = not prefixes or "" in prefixes
        found = [
            j
            for j in sorted(self._jobs.values(), key=lambda j: j.seq)
            if j.status == states.QUEUED
            and (tenant is None or j.tenant == tenant)
            and (any_topic or any(j.topic.startswith(p) for p in prefixes))
        ]
        return found[:limit]

    async def extend_lease(self, job_id: str, owner: str, expires_at: float, *, at: float) -> Job | None:
        await self._turn()
        job = self._jobs.get(job_id)
        if job is None or job.lease_owner != owner or job.status != states.RUNNING:
            return None
        self._jobs[job_id] = job = job.evolve(lease_expires_at=expires_at, updated_at=at)
        return job

    async def expired_leases(self, at: float, limit: int = 100) -> list[Job]:
        found = [
            j
            for j in sorted(self._jobs.values(), key=lambda j: j.seq)
            if j.lease_expires_at is not None
            and j.lease_expires_at < at
            and j.status in (states.DISPATCHED, states.RUNNING)
        ]
        return found[:limit]

    async def count_by_status(self, tenant: str | None = None) -> dict[str, int]:
        counts: dict[str, int] = {}
        for j in self._jobs.values():
            if tenant is None or j.tenant == tenant:
                counts[j.status] = counts.get(j.status, 0) + 1
        return counts

    async def oldest_in_state(self, status: str) -> float | None:
        return min((j.updated_at for j in self._jobs.values() if j.status == status), default=None)

    # decisions ------------------------------------------------------------------------------
    def _add_record(self, record: DecisionRecord) -> None:
        self._records.append((self._next_seq(), copy.deepcopy(record)))
        self._record_ids.add(record.decision_id)

    async def add_decision(self, record: DecisionRecord) -> None:
        await self._turn()
        if record.decision_id in self._record_ids:
            raise Conflict(f"decision `{record.decision_id}` is stored already", code="duplicate_decision")
        self._add_record(record)
        self._append(decision_event(record))

    async def decisions(self, job_id: str, tenant: str | None = None) -> list[DecisionRecord]:
        return [r for _, r in self._records if r.job_id == job_id and (tenant is None or r.tenant == tenant)]

    async def decision(self, decision_id: str, tenant: str | None = None) -> DecisionRecord | None:
        for _, r in self._records:
            if r.decision_id == decision_id and (tenant is None or r.tenant == tenant):
                return r
        return None

    async def list_decisions(
        self,
        tenant: str | None,
        *,
        stage: str | None = None,
        result: str | None = None,
        rule_id: str | None = None,
        since: float | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> DecisionPage:
        before = decode_cursor(cursor) if cursor else None
        wanted: dict[str, Any] = {"tenant": tenant, "stage": stage, "result": result, "rule_id": rule_id}
        found = [
            (seq, r)
            for seq, r in reversed(self._records)
            if all(v is None or getattr(r, k) == v for k, v in wanted.items())
            and (since is None or r.timestamp >= since)
            and (before is None or seq < before)
        ]
        page = found[:limit]
        next_cursor = encode_cursor(page[-1][0]) if len(found) > limit else None
        return DecisionPage(decisions=[r for _, r in page], next_cursor=next_cursor)

    # approvals ------------------------------------------------------------------------------
    async def approval(self, approval_id: str) -> Approval | None:
        found = self._approvals.get(approval_id)
        return found[1] if found else None

    async def latest_approval(self, job_id: str) -> Approval | None:
        found = [(seq, a) for seq, a in self._approvals.values() if a.job_id == job_id]
        return max(found, key=lambda x: x[0])[1] if found else None

    async def list_approvals(
        self, tenant: str | None, status: str | None, limit: int = 200, cursor: str | None = None
    ) -> ApprovalPage:
        after = decode_cursor(cursor) if cursor else None
        found = sorted(
            (
                (seq, a)
                for seq, a in self._approvals.values()
                if (tenant is None or a.tenant == tenant)
                and (status is None or a.status == status)
                and (after is None or seq > after)
            ),
            key=lambda x: x[0],
        )
        page = found[:limit]
        next_cursor = encode_cursor(page[-1][0]) if len(found) > limit else None
        return ApprovalPage(approvals=[a for _, a in page], next_cursor=next_cursor)

    async def overdue_approvals(self, at: float, limit: int = 100) -> list[Approval]:
        found = [
            a
            for _, a in self._approvals.values()
            if a.status == states.APPROVAL_PENDING and a.expires_at < at
        ]
        return sorted(found, key=lambda a: a.expires_at)[:limit]

    async def update_approval(
        self, update: ApprovalUpdate, *, at: float, record: DecisionRecord | None = None
    ) -> Approval | None:
        await self._turn()
        planned = self._plan_approvals(None, update, None, at)
        if planned is None:
            return None
        staged, events = planned
        if record is not None and record.decision_id in self._record_ids:
            raise Conflict(f"decision `{record.decision_id}` is stored already", code="duplicate_decision")
        self._commit_approvals(staged)
        moved = staged[update.approval_id]
        if record is not None:
            self._add_record(record)
            events += decision_event(record)
        if moved.kind == STEP:
            events.append(approval_event(moved, moved.status))
        self._append(events)
        return moved

    # audit ----------------------------------------------------------------------------------
    async def append_audit(self, events: Sequence[AuditEvent]) -> None:
        await self._turn()
        self._append(events)

    async def seal_audit(self) -> list[Checkpoint]:
        await self._turn()
        sealed = self.writer.seal(_Sink(self))
        self.writer.committed()
        return sealed

    async def audit_streams(self) -> list[str]:
        return sorted(s for s, entries in self._audit.items() if entries)

    async def audit_entries(
        self,
        stream: str,
        *,
        since_seq: int = 0,
        since_ts: float | None = None,
        limit: int | None = None,
    ) -> list[Entry]:
        found = [
            e
            for e in self._audit.get(stream, [])
            if e.seq > since_seq and (since_ts is None or e.ts >= since_ts)
        ]
        return found[:limit] if limit is not None else found

    async def audit_checkpoints(self, stream: str) -> list[Checkpoint]:
        return list(self._checkpoints.get(stream, []))

    async def audit_roots(self) -> list[Root]:
        return list(self._roots)

    # policies -------------------------------------------------------------------------------
    async def save_policy(self, row: PolicyRow) -> None:
        await self._turn()
        self._policies.append(copy.deepcopy(row))
        self._append(
            [
                policy_installed_event(
                    snapshot=row.snapshot,
                    serial=row.serial,
                    signature=row.signature,
                    installed_by=row.installed_by,
                    signature_verified=row.signature_verified,
                )
            ]
        )

    async def policy_history(self, limit: int = 20) -> list[PolicyRow]:
        return list(reversed(self._policies))[:limit]

    # shadow bundle --------------------------------------------------------------------------
    async def set_shadow_policy(self, row: PolicyRow | None) -> None:
        await self._turn()
        self._shadow = copy.deepcopy(row)

    async def shadow_policy(self) -> PolicyRow | None:
        return copy.deepcopy(self._shadow)

    async def add_disagreements(self, found: Sequence[Disagreement]) -> None:
        await self._turn()
        self._disagreements.extend(found)

    async def disagreements(
        self, *, shadow_snapshot: str | None = None, tenant: str | None = None, limit: int = 100
    ) -> list[Disagreement]:
        found = [
            d
            for d in reversed(self._disagreements)
            if (shadow_snapshot is None or d.shadow_snapshot == shadow_snapshot)
            and (tenant is None or d.tenant == tenant)
        ]
        return found[:limit]

    # tool pins ------------------------------------------------------------------------------

    async def tool_pins(self, adapter: str) -> dict[str, ToolPin]:
        return {tool: pin for (a, tool), pin in self._pins.items() if a == adapter}

    async def pin_tool(self, pin: ToolPin, *, replace: bool) -> ToolPin:
        await self._turn()
        key = (pin.adapter, pin.tool)
        if not replace and key in self._pins:
            return self._pins[key]
        self._pins[key] = pin
        return pin

    # sessions -------------------------------------------------------------------------------

    async def add_session(self, session: Session) -> None:
        await self._turn()
        if session.id in self._sessions:
            raise Conflict(f"session `{session.id}` exists already", code="duplicate_session")
        self._sessions[session.id] = session
        self._steps[session.id] = {}

    async def get_session(self, session_id: str, tenant: str | None = None) -> Session | None:
        s = self._sessions.get(session_id)
        return s if s is not None and (tenant is None or s.tenant == tenant) else None

    async def add_step(
        self, step: SessionStep, record: DecisionRecord, approval: Approval | None = None
    ) -> int:
        await self._turn()
        steps = self._steps.get(step.session_id)
        if steps is None:
            raise ValueError(f"no session `{step.session_id}`")
        if step.step_id in steps:
            raise Conflict(f"step `{step.step_id}` is decided already", code="duplicate_step")
        if record.decision_id in self._record_ids:
            raise Conflict(f"decision `{record.decision_id}` is stored already", code="duplicate_decision")
        planned = self._plan_approvals(approval, None, None, record.timestamp)
        assert planned is not None  # inserting a new approval has no compare-and-set to fail
        revision = self._bump(step.session_id)
        steps[step.step_id] = copy.deepcopy(step).evolve(rev=revision)
        self._commit_approvals(planned[0])
        self._add_record(record)
        events = decision_event(record)
        if approval is not None:
            events.append(approval_event(approval, "requested"))
        self._append(events)
        return revision

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
        await self._turn()
        step = self._steps.get(session_id, {}).get(step_id)
        if step is None or step.decision_id != expected_decision_id:
            return None
        planned = self._plan_approvals(new_approval, approval, consume_nonce, record.timestamp)
        if planned is None:
            return None
        staged, events = planned
        if record.decision_id in self._record_ids:
            raise Conflict(f"decision `{record.decision_id}` is stored already", code="duplicate_decision")
        moved = step.evolve(
            decision_id=record.decision_id,
            result=record.result,
            rule_id=record.rule_id,
            approval_id=new_approval.id if new_approval is not None else step.approval_id,
            rev=self._bump(session_id),
        )
        self._steps[session_id][step_id] = moved
        self._commit_approvals(staged)
        self._add_record(record)
        events += decision_event(record)
        for a in staged.values():
            if a.kind == STEP:
                fresh = new_approval is not None and a.id == new_approval.id
                events.append(approval_event(a, "requested" if fresh else a.status))
        self._append(events)
        return moved

    async def get_step(self, session_id: str, step_id: str) -> SessionStep | None:
        return self._steps.get(session_id, {}).get(step_id)

    async def session_steps(self, session_id: str, since: int = 0) -> list[SessionStep]:
        return [s for s in self._steps.get(session_id, {}).values() if s.rev > since]

    def _bump(self, session_id: str) -> int:
        session = self._sessions[session_id]
        self._sessions[session_id] = session = replace(session, revision=session.revision + 1)
        return session.revision

    async def claim_step(self, session_id: str, step_id: str, at: float) -> bool:
        await self._turn()
        step = self._steps.get(session_id, {}).get(step_id)
        if step is None or step.result != "allow" or step.status is not None or step.claimed_at is not None:
            return False
        self._steps[session_id][step_id] = step.evolve(claimed_at=at)
        return True

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
        await self._turn()
        session = self._sessions.get(session_id)
        step = self._steps.get(session_id, {}).get(step_id)
        if session is None or step is None or step.status is not None:
            return None
        if record is not None and record.decision_id in self._record_ids:
            raise Conflict(f"decision `{record.decision_id}` is stored already", code="duplicate_decision")
        kept: Any = None
        if not trusted and not session.bounded:
            size = session.untrusted_size + output_size(output)
            if size > bound:
                session = replace(session, untrusted_size=size, bounded=True)
            else:
                session = replace(session, untrusted_size=size)
                kept = copy.deepcopy(output)
        self._sessions[session_id] = session
        step = step.evolve(status=status, output=kept, trusted=trusted, rev=self._bump(session_id))
        self._steps[session_id][step_id] = step
        appended = list(events)
        if record is not None:
            self._add_record(record)
            appended = decision_event(record) + appended
        self._append(appended)
        return step

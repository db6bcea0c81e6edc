"""The store interface. Routes and the scheduler speak only this; SQL lives in the drivers.

Every method that changes a job applies one row of the state table as a compare-and-set and
writes the decision record (if any) in the same transaction, so a crash never leaves a job
moved without its record, or a record without its job.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gatehouse.audit.chain import Checkpoint, Entry
from gatehouse.audit.events import AuditEvent
from gatehouse.domain.approvals import Approval
from gatehouse.domain.containment import Containment
from gatehouse.domain.identity import Identity
from gatehouse.domain.jobs import Job
from gatehouse.domain.records import DecisionRecord

__all__ = ["DecisionPage", "JobPage", "PolicyRow", "Store"]


@dataclass(frozen=True, slots=True)
class JobPage:
    jobs: list[Job]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class DecisionPage:
    decisions: list[DecisionRecord]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class PolicyRow:
    snapshot: str
    text: str
    signature: dict[str, Any] | None
    installed_at: float
    installed_by: str | None
    serial: int | None


class Store(ABC):
    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    # identities
    @abstractmethod
    async def add_identity(self, identity: Identity, key_hash: str) -> None: ...

    @abstractmethod
    async def identity_by_key_hash(self, key_hash: str) -> Identity | None: ...

    @abstractmethod
    async def get_identity(self, identity_id: str) -> Identity | None: ...

    @abstractmethod
    async def list_identities(self, tenant: str | None) -> list[Identity]: ...

    @abstractmethod
    async def revoke_identity(self, identity_id: str, at: float) -> bool: ...

    # incident containments
    @abstractmethod
    async def add_containment(self, containment: Containment) -> None: ...

    @abstractmethod
    async def lift_containment(self, containment_id: str, *, at: float, by: str) -> Containment | None:
        """Lift an active containment; None when there is no active one with that id."""

    @abstractmethod
    async def containments(self, *, active_only: bool) -> list[Containment]: ...

    # jobs
    @abstractmethod
    async def insert_job(self, job: Job, record: DecisionRecord, approval: Approval | None = None) -> Job:
        """Insert `job` with its submit decision (and approval request). Returns it with `seq`."""

    @abstractmethod
    async def get_job(self, job_id: str, tenant: str | None = None) -> Job | None: ...

    @abstractmethod
    async def job_by_idempotency_key(self, identity_id: str, key: str) -> Job | None: ...

    @abstractmethod
    async def list_jobs(
        self,
        tenant: str | None,
        *,
        status: str | None = None,
        topic: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> JobPage: ...

    @abstractmethod
    async def transition(
        self,
        job_id: str,
        event: str,
        *,
        record: DecisionRecord | None = None,
        at: float,
        new_approval: Approval | None = None,
        approval_update: tuple[str, str, dict[str, Any]] | None = None,
        consume_nonce: str | None = None,
        count_attempt: bool = False,
        **fields: Any,
    ) -> Job | None:
        """Apply `event` if the job is in a state that allows it; None if it was not.

        `count_attempt` adds one to the job's `attempts` in the same compare-and-set (a lease
        hands it to a worker), from the stored count rather than the caller's copy.

        In the same transaction: insert `new_approval`, compare-and-set an approval
        (`(id, expected status, changes)`), consume an approval `nonce`. If any of those fails,
        nothing happens and the answer is None.
        """

    @abstractmethod
    async def queued_jobs(
        self, prefixes: Sequence[str], limit: int, *, tenant: str | None = None
    ) -> list[Job]:
        """Oldest queued jobs whose topic starts with one of `prefixes` ("" = any)."""

    @abstractmethod
    async def extend_lease(self, job_id: str, owner: str, expires_at: float, *, at: float) -> Job | None:
        """Push the lease of a running job held by `owner` to `expires_at`."""

    @abstractmethod
    async def expired_leases(self, at: float, limit: int = 100) -> list[Job]: ...

    @abstractmethod
    async def add_decision(self, record: DecisionRecord) -> None:
        """Store a record that moves no job (a denied submit, a simulation), with its audit entry,
        in one transaction."""

    @abstractmethod
    async def decisions(self, job_id: str, tenant: str | None = None) -> list[DecisionRecord]:
        """The records that name `job_id`, oldest first (of `tenant` only, when given)."""

    # the decision log
    @abstractmethod
    async def decision(self, decision_id: str, tenant: str | None = None) -> DecisionRecord | None: ...

    @abstractmethod
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
        """Newest first; `cursor` is the opaque `next_cursor` of the previous page (ValueError
        when it is not one)."""

    @abstractmethod
    async def count_by_status(self, tenant: str | None = None) -> dict[str, int]: ...

    @abstractmethod
    async def oldest_in_state(self, status: str) -> float | None:
        """When the longest-waiting job in `status` entered it (None if there is none)."""

    # approvals
    @abstractmethod
    async def approval(self, approval_id: str) -> Approval | None: ...

    @abstractmethod
    async def latest_approval(self, job_id: str) -> Approval | None: ...

    @abstractmethod
    async def list_approvals(
        self, tenant: str | None, status: str | None, limit: int = 200
    ) -> list[Approval]: ...

    @abstractmethod
    async def overdue_approvals(self, at: float, limit: int = 100) -> list[Approval]: ...

    # audit
    @abstractmethod
    async def append_audit(self, events: Sequence[AuditEvent]) -> None:
        """Append events that have no other change to travel with (e.g. a refused bundle)."""

    @abstractmethod
    async def audit_streams(self) -> list[str]: ...

    @abstractmethod
    async def audit_entries(
        self,
        stream: str,
        *,
        since_seq: int = 0,
        since_ts: float | None = None,
        limit: int | None = None,
    ) -> list[Entry]: ...

    @abstractmethod
    async def audit_checkpoints(self, stream: str) -> list[Checkpoint]: ...

    # policy
    @abstractmethod
    async def save_policy(self, row: PolicyRow) -> None: ...

    @abstractmethod
    async def active_policy(self) -> PolicyRow | None: ...

    @abstractmethod
    async def policy_history(self, limit: int = 20) -> list[PolicyRow]:
        """Installed bundles, newest first."""

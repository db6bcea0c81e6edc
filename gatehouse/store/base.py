"""The store interface, one small ABC per concern; `Store` is their union.

Services speak only these; storage lives in the drivers (`memory`, `sqlite`, later `postgres`),
and `tests/contract/test_store.py` runs one suite over every driver.

Rules every driver keeps:
- Every method that changes a job applies one row of the state table (`domain.states`) as a
  compare-and-set on the state it read, and writes the decision record, the approval changes and
  the audit entries of that change in the same transaction: a crash never leaves a job moved
  without its record, or a record without its job. A refused compare-and-set changes nothing
  and answers None.
- Audit entries are computed by `audit.writer.AuditWriter`, never by the driver; it only reads
  heads and persists rows (see `AuditSink`).
- A `tenant` argument filters: another tenant's object reads as absent. `None` means all tenants
  (admin and system paths only).

Errors (all in `gatehouse.errors`):
- `BadRequest(code="invalid_cursor")`: a `cursor` that is not a `next_cursor` of this store.
- `Conflict(code="duplicate_job")`: `insert_job` with a job id, or an (identity, idempotency key),
  that is already stored.
- `Conflict(code="already_contained")`: `add_containment` for a target already contained.
- `ValueError`: a programming error (an unknown event, a change the event may not make).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gatehouse.audit.chain import Checkpoint, Entry, Root
from gatehouse.audit.events import AuditEvent
from gatehouse.domain.approvals import Approval
from gatehouse.domain.changes import NO_CHANGES, ApprovalUpdate, JobChanges
from gatehouse.domain.containment import Containment
from gatehouse.domain.credentials import IssuedCredential
from gatehouse.domain.identity import Identity
from gatehouse.domain.jobs import Job
from gatehouse.domain.records import DecisionRecord
from gatehouse.domain.secrets import StoredSecret
from gatehouse.domain.sessions import Session, SessionStep
from gatehouse.domain.shadow import Disagreement
from gatehouse.domain.tools import ToolPin

__all__ = [
    "ApprovalPage",
    "ApprovalStore",
    "AuditStore",
    "ContainmentStore",
    "CredentialStore",
    "DecisionPage",
    "DecisionStore",
    "IdentityStore",
    "JobPage",
    "JobStore",
    "PolicyRow",
    "PolicyStore",
    "SecretStore",
    "SessionStore",
    "ShadowStore",
    "Store",
    "ToolPinStore",
]


@dataclass(frozen=True, slots=True)
class JobPage:
    jobs: list[Job]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class ApprovalPage:
    approvals: list[Approval]
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
    # True only when a trusted key's signature was checked at install (never stored: a restart
    # checks the stored signature again against the keys it trusts then).
    signature_verified: bool = False


class IdentityStore(ABC):
    @abstractmethod
    async def add_identity(self, identity: Identity, key_hash: str) -> None: ...

    @abstractmethod
    async def identity_by_key_hash(self, key_hash: str) -> Identity | None:
        """The identity holding that key, revoked ones included (the caller checks). A driver
        may cache; a revocation through the same store is seen at once."""

    @abstractmethod
    async def get_identity(self, identity_id: str) -> Identity | None: ...

    @abstractmethod
    async def list_identities(self, tenant: str | None) -> list[Identity]:
        """Oldest first."""

    @abstractmethod
    async def revoke_identity(self, identity_id: str, at: float) -> bool:
        """False when there is no such identity or it was revoked already."""


class ContainmentStore(ABC):
    @abstractmethod
    async def add_containment(self, containment: Containment) -> None:
        """`Conflict(already_contained)` when that kind and target is contained already."""

    @abstractmethod
    async def lift_containment(self, containment_id: str, *, at: float, by: str) -> Containment | None:
        """Lift an active containment; None when there is no active one with that id."""

    @abstractmethod
    async def containments(self, *, active_only: bool) -> list[Containment]:
        """Oldest first."""


class JobStore(ABC):
    @abstractmethod
    async def insert_job(self, job: Job, record: DecisionRecord, approval: Approval | None = None) -> Job:
        """Insert `job` with its submit decision (and approval request). Returns it with `seq`.
        `Conflict(duplicate_job)` when its id or its idempotency key is taken."""

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
    ) -> JobPage:
        """Newest first; `cursor` is the `next_cursor` of the previous page."""

    @abstractmethod
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
        """Apply `event` with `changes` if the job is in a state that allows it; None if not.

        In the same transaction: insert `new_approval`, compare-and-set `approval` (its event
        names the status it must be in), consume an approved approval's `nonce` (once ever). If
        any of those fails, nothing happens and the answer is None.
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
    async def expired_leases(self, at: float, limit: int = 100) -> list[Job]:
        """Dispatched or running jobs whose lease ran out before `at`."""

    @abstractmethod
    async def count_by_status(self, tenant: str | None = None) -> dict[str, int]: ...

    @abstractmethod
    async def oldest_in_state(self, status: str) -> float | None:
        """When the longest-waiting job in `status` entered it (None if there is none)."""


class DecisionStore(ABC):
    @abstractmethod
    async def add_decision(self, record: DecisionRecord) -> None:
        """Store a record that moves no job (a denied submit, a simulation), with its audit entry,
        in one transaction."""

    @abstractmethod
    async def decisions(self, job_id: str, tenant: str | None = None) -> list[DecisionRecord]:
        """The records that name `job_id`, oldest first (of `tenant` only, when given)."""

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
        """Newest first; `cursor` is the `next_cursor` of the previous page."""


class ApprovalStore(ABC):
    @abstractmethod
    async def approval(self, approval_id: str) -> Approval | None: ...

    @abstractmethod
    async def latest_approval(self, job_id: str) -> Approval | None: ...

    @abstractmethod
    async def list_approvals(
        self, tenant: str | None, status: str | None, limit: int = 200, cursor: str | None = None
    ) -> ApprovalPage:
        """Oldest first (the queue's order); `cursor` is the `next_cursor` of the previous page."""

    @abstractmethod
    async def overdue_approvals(self, at: float, limit: int = 100) -> list[Approval]:
        """Pending approvals that expired before `at`, soonest expiry first."""

    @abstractmethod
    async def update_approval(
        self, update: ApprovalUpdate, *, at: float, record: DecisionRecord | None = None
    ) -> Approval | None:
        """Compare-and-set one approval that moves no job (a step approval approved, rejected or
        expired), with `record` and its audit entry, in one transaction. None when the approval
        is not in the status `update.event` expects (nothing is written);
        `Conflict(duplicate_nonce)` when the nonce it brings is stored already."""


class AuditStore(ABC):
    @abstractmethod
    async def append_audit(self, events: Sequence[AuditEvent]) -> None:
        """Append events that have no other change to travel with (e.g. a refused bundle)."""

    @abstractmethod
    async def seal_audit(self) -> list[Checkpoint]:
        """Sign the head of every stream that moved since its last checkpoint, and a root over
        every stream's last checkpoint (every few seconds from the plane, before an export;
        `close` does it too). Returns the new checkpoints; none without a key."""

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
    async def audit_checkpoints(self, stream: str) -> list[Checkpoint]:
        """Oldest first."""

    @abstractmethod
    async def audit_roots(self) -> list[Root]:
        """Every signed root, oldest first."""


class SessionStore(ABC):
    """Sessions of the step gate (`domain.sessions`)."""

    @abstractmethod
    async def add_session(self, session: Session) -> None:
        """`Conflict(duplicate_session)` when its id is taken (in any tenant)."""

    @abstractmethod
    async def get_session(self, session_id: str, tenant: str | None = None) -> Session | None: ...

    @abstractmethod
    async def add_step(
        self, step: SessionStep, record: DecisionRecord, approval: Approval | None = None
    ) -> int:
        """Store a decided step with its decision record, its approval request (a step that
        waits for a person) and their audit entries, in one transaction; return the session
        revision the step took. `Conflict(duplicate_step)` when the session has that step id
        already."""

    @abstractmethod
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
        """Give a step that waited for approval its new decision `record` (its result and rule
        become the step's), if its decision is still `expected_decision_id`. In the same
        transaction: compare-and-set `approval`, consume an approved approval's `consume_nonce`
        (once ever), insert `new_approval` (which the step then names). If any of those fails,
        nothing happens and the answer is None."""

    @abstractmethod
    async def get_step(self, session_id: str, step_id: str) -> SessionStep | None: ...

    @abstractmethod
    async def session_steps(self, session_id: str, since: int = 0) -> list[SessionStep]:
        """Oldest first; with `since`, only the steps changed after that session revision.

        Every change to a session's steps (decided, settled, given a result) takes the session's
        next `revision` in the writing transaction and stamps the step with it (`rev`)."""

    @abstractmethod
    async def claim_step(self, session_id: str, step_id: str, at: float) -> bool:
        """Claim an allowed step without a result for Gatehouse to execute: True for the one
        caller that claims it (across connections and replicas), False when it is claimed
        already, has a result, is not allowed or does not exist. Not a change rules read: the
        session's revision stays."""

    @abstractmethod
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
        """Set the step's result once (None when it has one already or does not exist). An
        untrusted output is kept while the session's kept untrusted output stays within `bound`
        characters (of its strings); past it, it is dropped and the session becomes `bounded`.
        `record` (the output gate's decision on the result) with its audit entry, and `events`
        (e.g. the broker's account of the call), are stored in the same transaction: a result
        is never kept without them, nor they without it."""


class ToolPinStore(ABC):
    """Pinned MCP tool definitions (`domain.tools`), global per adapter: they survive restarts
    and every replica reads the same pins."""

    @abstractmethod
    async def tool_pins(self, adapter: str) -> dict[str, ToolPin]:
        """The adapter's pins by tool name."""

    @abstractmethod
    async def pin_tool(self, pin: ToolPin, *, replace: bool) -> ToolPin:
        """Store `pin` and answer the pin now in force. `replace=False` (first sight) keeps a pin
        already stored for that tool and answers it; `replace=True` (an admin) overwrites it."""


class SecretStore(ABC):
    """Secrets of the broker, sealed by `broker.secrets` (the store never sees a value)."""

    @abstractmethod
    async def put_secret(self, secret: StoredSecret) -> StoredSecret:
        """Create or replace the tenant's secret of that name (a replacement keeps the first
        `created_at` and `created_by`), with a `secret.set` audit entry naming it, in one
        transaction. Answers what is stored; `created_at == updated_at` for a new one."""

    @abstractmethod
    async def get_secret(self, tenant: str, name: str) -> StoredSecret | None: ...

    @abstractmethod
    async def list_secrets(self, tenant: str) -> list[StoredSecret]:
        """By name."""

    @abstractmethod
    async def delete_secret(self, tenant: str, name: str) -> bool:
        """False when there is none; else deleted with a `secret.deleted` audit entry."""


class CredentialStore(ABC):
    """Credentials minted per execution (`domain.credentials`), by `jti`."""

    @abstractmethod
    async def add_credential(self, credential: IssuedCredential) -> None:
        """Store it with its `credential.issued` audit entry. `Conflict(duplicate_credential)`
        when the jti is taken."""

    @abstractmethod
    async def get_credential(self, jti: str) -> IssuedCredential | None: ...

    @abstractmethod
    async def revoke_credentials(
        self,
        *,
        at: float,
        tenant: str | None,
        jti: str | None = None,
        adapter: str | None = None,
        session_id: str | None = None,
    ) -> list[IssuedCredential]:
        """Revoke the live credentials (neither revoked nor expired at `at`) that match every
        filter given (`tenant` None: any tenant), each tenant's with one `credential.revoked`
        audit entry, in one transaction. Answers those revoked, oldest first."""


class PolicyStore(ABC):
    @abstractmethod
    async def save_policy(self, row: PolicyRow) -> None: ...

    @abstractmethod
    async def policy_history(self, limit: int = 20) -> list[PolicyRow]:
        """Installed bundles, newest first."""


class ShadowStore(ABC):
    """The shadow bundle (at most one, shared by replicas) and the decisions it disagreed on."""

    @abstractmethod
    async def set_shadow_policy(self, row: PolicyRow | None) -> None:
        """Install `row` as the shadow bundle, replacing any; None removes it."""

    @abstractmethod
    async def shadow_policy(self) -> PolicyRow | None: ...

    @abstractmethod
    async def add_disagreements(self, found: Sequence[Disagreement]) -> None:
        """Store disagreements (a batch the shadow gathered), in one transaction."""

    @abstractmethod
    async def disagreements(
        self, *, shadow_snapshot: str | None = None, tenant: str | None = None, limit: int = 100
    ) -> list[Disagreement]:
        """Newest first; only those of that shadow bundle and tenant when given."""


class Store(
    IdentityStore,
    ContainmentStore,
    JobStore,
    DecisionStore,
    ApprovalStore,
    AuditStore,
    PolicyStore,
    ShadowStore,
    SessionStore,
    ToolPinStore,
    SecretStore,
    CredentialStore,
):
    """Every concern, opened and closed together."""

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None:
        """Flush, sign the audit heads (`seal_audit`), release the backend."""

"""The shapes of the API's answers, for the OpenAPI document only.

The routes answer with `json_response(obj.to_public())` (orjson, no per-request validation: it
is the hot path), so these models are never instantiated on a request. They describe what the
`to_public()` methods of `gatehouse.domain` produce, and `tests/api/test_api_openapi.py` checks
real answers of a running server against them. Every model allows extra keys: a field added to
an answer is not a breaking change for a generated client.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AdapterCall",
    "AdapterList",
    "Approval",
    "ApprovalDecided",
    "ApprovalList",
    "AuditPage",
    "AuditStreams",
    "AuditVerify",
    "Credential",
    "Decision",
    "DecisionPage",
    "ErrorBody",
    "Explanation",
    "Health",
    "Identity",
    "IdentityCreated",
    "IdentityList",
    "Incident",
    "IncidentList",
    "Job",
    "JobDecisions",
    "JobPage",
    "Jwks",
    "Lease",
    "PolicyInfo",
    "QuarantineList",
    "Quarantined",
    "Revoked",
    "Secret",
    "SecretDeleted",
    "SecretList",
    "SecretValue",
    "Session",
    "ShadowDiff",
    "ShadowPolicy",
    "ShadowRemoved",
    "StepDecision",
    "Submitted",
    "ToolList",
    "ToolPin",
    "WhoAmI",
]

Time = str  # RFC 3339 in UTC, e.g. 2026-11-30T13:00:28.414Z
Result = Literal["allow", "deny", "require_approval", "redact", "quarantine"]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorDetail(_Open):
    code: str = Field(description="stable, machine-readable, snake_case")
    message: str = Field(description="for a person: lowercase, user input in backticks")
    details: dict[str, Any] = Field(description="more about the error, by code; often empty")


class ErrorBody(_Open):
    """Every error: `{"error": {...}}`. A `denied` 403 also carries the decision at the top level."""

    error: ErrorDetail


class Remediation(_Open):
    id: str
    description: str
    set: dict[str, Any] = Field(default_factory=dict, description="fields the remediated job changes")
    set_labels: dict[str, str] = Field(default_factory=dict)


class Decision(_Open):
    """One record of the decision log (submit, dispatch, step, output, simulate, approval)."""

    decision_id: str
    timestamp: Time
    result: Result
    decision: Result = Field(description="an alias of `result`")
    rule_id: str
    reason: str
    stage: Literal["submit", "dispatch", "step", "output", "simulate", "approval"]
    policy_snapshot: str | None = Field(description="sha256 of the policy bundle that decided")
    job_hash: str | None
    remediations: list[Remediation]
    cached: bool
    fail_mode_applied: bool = Field(description="true when the kernel could not answer in time")
    job_id: str | None


class Job(_Open):
    job_id: str
    tenant: str
    topic: str
    prompt: str
    labels: dict[str, str] = Field(description="declared labels and the ones the server derived")
    meta: dict[str, Any]
    attachments: list[dict[str, Any]]
    status: str = Field(description="a job status (queued, pending_approval, leased, succeeded, ...)")
    job_hash: str
    policy_snapshot: str | None
    submitted_by: str
    idempotency_key: str | None
    derived: dict[str, Any] = Field(description="what the server derived: labels, risk_tags, hits, output")
    result: Any = None
    error: str | None = None
    attempts: int
    lease_expires_at: Time | None
    remediated_from: str | None
    created_at: Time
    updated_at: Time


class Submitted(_Open):
    """The answer to a submit (201; 200 when an Idempotency-Key replays an earlier one)."""

    job_id: str
    status: str
    decision: Decision
    derived: dict[str, Any]
    remediated_from: str | None = None


class JobPage(_Open):
    jobs: list[Job]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null at the end")


class JobDecisions(_Open):
    job_id: str
    decisions: list[Decision]


class DecisionPage(_Open):
    decisions: list[Decision]
    next_cursor: str | None


class StepDecision(Decision):
    session_id: str | None = None
    step_id: str | None = None
    target: str | None = None
    step_hash: str | None = None
    replayed: bool | None = None


class Approval(_Open):
    """A job approval (`job_id`, `job_hash`) or a step approval (`session_id`, `step_id`, `target`)."""

    approval_id: str
    kind: Literal["job", "step"]
    status: str = Field(description="pending, approved, rejected, expired or consumed")
    rule_id: str
    reason: str
    policy_snapshot: str | None
    requested_at: Time
    expires_at: Time | None
    approver: str | None
    decided_at: Time | None
    comment: str | None
    consumed_at: Time | None
    job_id: str | None = None
    job_hash: str | None = None
    session_id: str | None = None
    step_id: str | None = None
    target: str | None = None
    decision: Decision | None = Field(
        default=None, description="the decision that asked for the approval (the job's gate's, the step's)"
    )
    derived: dict[str, Any] | None = Field(
        default=None,
        description="what the server derived: a job's labels, risk tags and hits; for a step, those "
        "of its params plus `detections` (param path -> detectors), `detected`, `secrets`, `hosts` "
        "(the hosts its links name), `from_untrusted` (params whose values occur in untrusted output "
        "of the session), `untrusted_checks` (fields the deciding rule tested with `from_untrusted`) "
        "and `effect` (the action's, from the catalog)",
    )
    policy: dict[str, Any] | None = Field(
        default=None,
        description="step approvals: the bundle that asked, `{name, snapshot, serial, current}` "
        "(`name` while it still runs; `serial` of a signed install)",
    )


class ApprovalList(_Open):
    approvals: list[Approval]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null at the end")


class ApprovalDecided(_Open):
    status: str
    approval: Approval
    job_id: str | None = None
    token: dict[str, Any] | None = Field(None, description="a signed, single-use approval token")


class Identity(_Open):
    id: str
    name: str
    tenant: str
    roles: list[str]
    topics: list[str]
    capabilities: list[str]
    adapters: list[str]
    created_at: Time
    revoked_at: Time | None
    revoked: bool
    rate_limit: str | None


class IdentityCreated(Identity):
    api_key: str = Field(description="shown once; only its hash is stored")


class IdentityList(_Open):
    identities: list[Identity]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null at the end")


class WhoAmI(Identity):
    acting_tenant: str


class Incident(_Open):
    id: str
    kind: Literal["identity", "tenant", "adapter"]
    target: str
    reason: str
    active: bool
    created_at: Time
    created_by: str
    lifted_at: Time | None
    lifted_by: str | None


class IncidentList(_Open):
    incidents: list[Incident]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null at the end")


class IncidentSignal(_Open):
    signal: str
    metric: str
    recent: int
    recent_per_min: float
    baseline: int
    baseline_per_min: float
    ratio: float | None
    flagged: bool


class IncidentStatus(_Open):
    containments: list[Incident]
    window_seconds: int
    baseline_seconds: int
    threshold: float
    signals: list[IncidentSignal]
    flagged: list[str]


class Quarantined(_Open):
    id: str
    job_id: str
    tenant: str
    topic: str
    submitted_by: str
    rule_id: str | None
    reason: str | None
    findings: list[Any]
    preview: Any = None
    preview_error: Any = None
    worker_status: str | None = None
    quarantined_at: Time


class QuarantineList(_Open):
    quarantine: list[Quarantined]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null at the end")


class PolicyInfo(_Open):
    """Readers (admin, approver, reviewer) see everything; others the name and snapshot."""

    name: str
    snapshot: str
    policy_snapshot: str
    rules: int | None = None
    output_rules: int | None = None
    default_decision: str | None = None
    fail_mode: str | None = None
    bundle: str | None = None
    signed: bool | None = None
    signature_verified: bool | None = None
    signature: dict[str, Any] | None = None
    serial: int | None = None
    installed_at: Time | None = None
    installed_by: str | None = None
    degraded: Any = None


class ShadowPolicy(_Open):
    """The shadow bundle: judged beside the live one (`live_snapshot`), never enforced."""

    name: str
    snapshot: str
    policy_snapshot: str
    live_snapshot: str | None
    rules: int
    default_decision: str
    bundle: str
    signed: bool
    signature: dict[str, Any] | None
    serial: int | None
    installed_at: Time
    installed_by: str | None
    enforced: Literal[False]


class ShadowSide(_Open):
    decision: str
    rule_id: str
    reason: str | None = None
    policy_snapshot: str | None


class Disagreement(_Open):
    """A decision on which the shadow bundle disagreed: `decision_id` is the live decision's."""

    decision_id: str
    timestamp: Time
    stage: Literal["submit", "dispatch", "step"]
    tenant: str | None
    subject: str | None = Field(description="a job's topic or a step's target")
    live: ShadowSide
    shadow: ShadowSide


class ShadowDiff(_Open):
    shadow_snapshot: str
    count: int
    disagreements: list[Disagreement]


class ShadowRemoved(_Open):
    removed: bool


class Explanation(_Open):
    decision: dict[str, Any]
    winner: str | None
    why: str
    policy_snapshot: str | None
    rules: list[dict[str, Any]]


class Session(_Open):
    """A session and its steps.

    With `?detail=replay` (admins only) each step also has `params`, `output` (the kept
    untrusted output, as kept: not redacted), `trusted` and `job` (the job fields it was judged
    with: `tenant`, `requester_role`, and `topic`, `capability` for a step taken inside a job),
    and the session `untrusted_bound` (characters of output it keeps)."""

    session_id: str
    task: str
    job_id: str | None
    created_at: Time
    untrusted_bytes: int
    bounded: bool
    steps: list[dict[str, Any]]
    detail: str | None = None
    untrusted_bound: int | None = None


class AdapterList(_Open):
    adapters: list[dict[str, Any]]
    policy_snapshot: str | None


class AdapterCall(_Open):
    """A step the broker ran (200), or one waiting for an approval (202)."""

    decision: Decision
    session_id: str
    step_id: str
    status: str | None = None
    approval_id: str | None = None
    http_status: int | None = None
    output: Any = None
    withheld: bool | None = None


class ToolList(_Open):
    adapter: str | None = None
    tools: list[dict[str, Any]]


class ToolPin(_Open):
    adapter: str | None = None
    tool: str | None = None
    digest: str | None = None


class SecretDeleted(_Open):
    name: str
    deleted: bool


class Revoked(_Open):
    revoked: int
    jtis: list[str]


class Secret(_Open):
    name: str
    tenant: str
    created_at: Time
    updated_at: Time
    created_by: str | None
    updated_by: str | None


class SecretValue(Secret):
    value: str | None = None


class SecretList(_Open):
    secrets: list[Secret]


class Credential(_Open):
    active: bool | None = None


class LeasedJob(_Open):
    job_id: str
    topic: str
    prompt: str
    labels: dict[str, str]
    meta: dict[str, Any]
    attachments: list[dict[str, Any]]
    tenant: str
    lease_expires_at: Time | None


class Lease(_Open):
    jobs: list[LeasedJob]


class AuditPage(_Open):
    stream: str
    entries: list[dict[str, Any]]


class AuditStreams(_Open):
    streams: list[str]


class AuditVerify(_Open):
    ok: bool
    streams: list[dict[str, Any]]


class Jwks(_Open):
    keys: list[dict[str, Any]]


class Health(_Open):
    status: str

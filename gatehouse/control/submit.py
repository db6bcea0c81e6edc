"""The submit gate: submit, simulate and explain, cancel, remediate.

Enforcement order on submit (DESIGN.md section 1): the caller is authenticated and the body
validated before we get here (the edge hands over a `JobRequest`); then ingress, then the
decision pipeline (`control/decide.py`: containment, identity scope, policy), and only then is
anything persisted. A denied submit leaves no job row: its decision record, holding the canonical
request it judged, goes to the decision log with its audit entry (one transaction), so the 403 is
traceable and its remediations can still be applied (`remediate_decision`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gatehouse.bus.subjects import JOBS_QUEUED
from gatehouse.control.decide import DecisionPipeline, job_scope
from gatehouse.control.deps import Deps
from gatehouse.control.lookup import moved_or_conflict, require_job
from gatehouse.domain import states
from gatehouse.domain.approvals import new_request
from gatehouse.domain.identity import Identity
from gatehouse.domain.ids import new_id, now
from gatehouse.domain.jobs import Job, job_context, job_hash, request_of
from gatehouse.domain.records import DecisionRecord, Verdict, make_record
from gatehouse.domain.requests import JobRequest, check_request
from gatehouse.errors import BadRequest, Conflict, Forbidden, MissingField, NotFound, PayloadTooLarge
from gatehouse.ingress import intake
from gatehouse.ingress.canon import canon_topic
from gatehouse.policy import DENY

__all__ = ["SubmitGate", "Submitted"]

_SUBMIT_STAGE = "submit"

# A deny moves no job (see `_denied`): only these two submit events store one.
_SUBMIT_EVENT = {
    "allow": "submit_allow",
    "require_approval": "submit_require_approval",
}


@dataclass(frozen=True, slots=True)
class Submitted:
    """The answer to a submit. For a deny, `job` is the draft that was judged: it was not stored."""

    job: Job
    record: DecisionRecord
    replayed: bool = False

    @property
    def stored(self) -> bool:
        return self.record.result != DENY


class SubmitGate:
    """Submit, simulate, explain, cancel and remediate: every way a request becomes a job."""

    def __init__(self, *, deps: Deps, pipeline: DecisionPipeline) -> None:
        self.store = deps.store
        self.bus = deps.bus
        self.kernel = deps.kernel
        self.metrics = deps.metrics
        self.settings = deps.settings
        self.pipeline = pipeline

    def _draft(self, who: Identity, tenant: str, body: JobRequest) -> Job:
        """The job as it would be stored, before any decision (pure: no I/O)."""
        if len(body.labels) > self.settings.max_labels:
            raise BadRequest(
                f"too many labels: {len(body.labels)} (at most {self.settings.max_labels})",
                code="too_many_labels",
            )
        if len(body.attachments) > self.settings.max_attachments:
            raise BadRequest(
                f"too many attachments: {len(body.attachments)} (at most {self.settings.max_attachments})",
                code="too_many_attachments",
            )
        if len(body.prompt) > self.settings.max_prompt_chars:
            raise PayloadTooLarge(
                f"the prompt has {len(body.prompt)} characters (at most {self.settings.max_prompt_chars}); "
                "send large inputs as attachments",
                code="prompt_too_long",
            )
        if body.tenant is not None and body.tenant != tenant:
            raise Forbidden(f"tenant `{body.tenant}` is not the caller's tenant", code="tenant_mismatch")
        # Ingress: what reaches the gate is what the agent really asks for, not what it claims.
        # The same pure function runs in the offline policy tools.
        taken = intake(
            prompt=body.prompt,
            labels=body.labels,
            meta=body.meta,
            attachments=body.attachments,
            classifier=self.kernel.classifier,
            max_attachment_chars=self.settings.max_classified_attachment_chars,
        )
        labels, meta, attachments, derived = taken.labels, taken.meta, taken.attachments, taken.derived
        topic = canon_topic(body.topic)  # `JOB.EXEC.SHELL` is `job.exec.shell` to every rule
        # Fields the policy requires (`require:`), before any decision. Out-of-scope callers are
        # left to the scope check, which denies them without telling what the policy asks for.
        if who.may_use_topic(topic) and who.may_use_capability(meta.get("capability")):
            missing = self.kernel.missing_fields(
                topic, {"prompt": body.prompt, "labels": labels, "meta": meta}
            )
            if missing:
                raise MissingField(topic, missing)
        at = now()
        return Job(
            id=new_id("job"),
            tenant=tenant,
            identity_id=who.id,
            topic=topic,
            prompt=body.prompt,
            labels=labels,
            meta=meta,
            attachments=attachments,
            status="",
            job_hash=job_hash(
                tenant=tenant,
                topic=topic,
                prompt=body.prompt,
                labels=labels,
                meta=meta,
                attachments=attachments,
            ),
            created_at=at,
            updated_at=at,
            idempotency_key=body.idempotency_key,
            requester_roles=who.roles,
            derived=derived,
        )

    async def _verdict(self, who: Identity, job: Job, stage: str) -> Verdict:
        return await self.pipeline.judge(
            tenant=job.tenant,
            identity_id=who.id,
            ctx=job_context(job),
            stage=stage,
            checks=(job_scope(who, job.topic, job.meta.get("capability")),),
        )

    async def submit(
        self, who: Identity, tenant: str, body: JobRequest, *, remediated_from: str | None = None
    ) -> Submitted:
        # Submitting is the agent's act: a worker, reviewer or approver key that submits could
        # lease, review or approve its own work. An admin (the operator) may too; see README.
        who.require_role("agent", message=f"identity `{who.name}` needs the agent role to submit jobs")
        draft = self._draft(who, tenant, body)
        if draft.idempotency_key is not None:
            existing = await self.store.job_by_idempotency_key(who.id, draft.idempotency_key)
            if existing is not None:
                return await self._replay(existing, draft)
        verdict = await self._verdict(who, draft, "submit")
        if verdict.result == DENY:
            return await self._denied(draft, verdict, remediated_from)
        status = states.next_state(None, _SUBMIT_EVENT[verdict.result])
        job = draft.evolve(status=status, policy_snapshot=verdict.snapshot, remediated_from=remediated_from)
        record = make_record(
            verdict,
            stage="submit",
            job_id=job.id,
            tenant=tenant,
            job_hash=job.job_hash,
            extra={"derived": job.derived},
        )
        approval = None
        if status == states.PENDING_APPROVAL:
            d = verdict.decision
            approval = new_request(
                job,
                rule_id=d.rule_id,
                reason=d.reason,
                ttl=d.approval_ttl,
                snapshot=verdict.snapshot,
                at=job.created_at,
            )
        try:
            job = await self.store.insert_job(job, record, approval)
        except Conflict:
            # The same idempotency key won a race with us: answer with the winner.
            existing = await self.store.job_by_idempotency_key(who.id, draft.idempotency_key or "")
            if existing is None:
                raise
            return await self._replay(existing, draft)
        self.metrics.jobs_submitted.labels(verdict.result).inc()
        if approval is not None:
            self.metrics.approval_event("requested")
        if status == states.QUEUED:
            await self.bus.publish(JOBS_QUEUED, {"job_id": job.id, "topic": job.topic})
        return Submitted(job=job, record=record)

    async def _denied(self, draft: Job, verdict: Verdict, remediated_from: str | None) -> Submitted:
        """A denied submit: no job row, only its record (with the request) and audit entry.

        An idempotency key does not make a deny replayable: there is no row to replay, so the
        same request sent again is judged again (and, should the policy allow it by then, it is
        stored under that key as usual).
        """
        extra: dict[str, Any] = {"derived": draft.derived}
        if remediated_from is not None:
            extra["remediated_from"] = remediated_from
        record = make_record(
            verdict,
            stage=_SUBMIT_STAGE,
            job_id=None,
            tenant=draft.tenant,
            job_hash=draft.job_hash,
            extra=extra,
            request=request_of(draft),
        )
        await self.store.add_decision(record)
        self.metrics.jobs_submitted.labels(DENY).inc()
        job = draft.evolve(policy_snapshot=verdict.snapshot, remediated_from=remediated_from)
        return Submitted(job=job, record=record)

    async def _replay(self, existing: Job, draft: Job) -> Submitted:
        if existing.job_hash != draft.job_hash:
            raise Conflict(
                f"idempotency key `{draft.idempotency_key}` was used for a different job",
                code="idempotency_key_reused",
                details={"job_id": existing.id},
            )
        records = await self.store.decisions(existing.id)
        submit = next(r for r in records if r.stage == "submit")
        return Submitted(job=existing, record=submit, replayed=True)

    async def _decide_body(self, who: Identity, tenant: str, body: JobRequest) -> tuple[Job, str | None]:
        """The job to judge, and the `job_id` its record carries. With a topic the body is the
        job and `job_id` only a label (a runbook's `sim-prod-write-1` need not exist); with a
        `job_id` alone, the tenant's stored job is re-judged."""
        if body.topic:
            return self._draft(who, tenant, body), body.job_id
        if not body.job_id:
            raise BadRequest("a topic or a job_id is required", code="invalid_topic")
        if body.tenant is not None and body.tenant != tenant:
            raise Forbidden(f"tenant `{body.tenant}` is not the caller's tenant", code="tenant_mismatch")
        stored = await require_job(self.store, body.job_id, tenant)
        return stored, stored.id

    async def simulate(self, who: Identity, tenant: str, body: JobRequest) -> DecisionRecord:
        """The decision the job would get now. Side effect: only a `simulate` record."""
        job, job_id = await self._decide_body(who, tenant, body)
        if job_id is not None:
            # The record goes into the history of the job it names (a stored job re-judged, or
            # a label that happens to name one): only a party to that job writes there.
            named = job if job.id == job_id and job.status else await self.store.get_job(job_id, tenant)
            if named is not None:
                _require_party(who, named, "simulate")
        verdict = await self._verdict(who, job, "simulate")
        record = make_record(
            verdict,
            stage="simulate",
            job_id=job_id,
            tenant=tenant,
            job_hash=job.job_hash,
            extra={"derived": job.derived},
        )
        await self.store.add_decision(record)
        return record

    async def explain(self, who: Identity, tenant: str, body: JobRequest) -> dict[str, Any]:
        job, _ = await self._decide_body(who, tenant, body)
        ctx = job_context(job)
        out = await self.pipeline.explain(
            tenant=job.tenant,
            identity_id=who.id,
            ctx=ctx,
            checks=(job_scope(who, job.topic, job.meta.get("capability")),),
        )
        out["context"] = ctx
        out["derived"] = job.derived
        return out

    async def cancel(self, who: Identity, tenant: str, job_id: str) -> Job:
        job = await require_job(self.store, job_id, tenant)
        if job.identity_id != who.id:
            who.require_role(
                "approver",
                message="only the submitter, an approver or an admin may cancel a job",
                code=Forbidden.code,
            )
        moved = moved_or_conflict(
            await self.store.transition(job_id, "cancel", at=now()),
            job_id,
            message=f"job `{job_id}` is `{job.status}` and can no longer be cancelled",
            details={"status": job.status},
        )
        self.metrics.jobs_finished.labels("cancelled").inc()
        return moved

    async def remediate(self, who: Identity, tenant: str, job_id: str, remediation_id: str) -> Submitted:
        """Submit a new job with an offered remediation applied; it is judged afresh."""
        job = await require_job(self.store, job_id, tenant)
        offered: dict[str, Any] | None = None
        for record in reversed(await self.store.decisions(job_id, tenant)):
            if record.stage == "simulate":
                continue  # a simulation offers nothing: only the job's own decisions do
            offered = _offered(record, remediation_id)
            if offered is not None:
                break
        if offered is None:
            raise NotFound(
                f"remediation `{remediation_id}` was not offered for job `{job_id}`",
                code="remediation_not_found",
            )
        attachments = [{k: a[k] for k in ("name", "content_type", "content_base64")} for a in job.attachments]
        body = _remediated(job.topic, job.prompt, job.labels, job.meta, attachments, offered)
        return await self.submit(who, tenant, body, remediated_from=job.id)

    async def remediate_decision(
        self, who: Identity, tenant: str, decision_id: str, remediation_id: str
    ) -> Submitted:
        """The same for a submit that left no job (a deny): the record kept the request."""
        record = await self.store.decision(decision_id, tenant)
        if record is None:
            raise NotFound(f"no decision `{decision_id}`", code="decision_not_found")
        offered = _offered(record, remediation_id)
        remediable = record.stage == _SUBMIT_STAGE and record.result in (DENY, "require_approval")
        if not remediable or offered is None:
            raise NotFound(
                f"remediation `{remediation_id}` was not offered by decision `{decision_id}`",
                code="remediation_not_found",
            )
        if record.request is None:
            # A submit that was stored (require_approval): its job holds the request.
            if record.job_id is None:
                raise NotFound(f"decision `{decision_id}` kept no request", code="remediation_not_found")
            return await self.remediate(who, tenant, record.job_id, remediation_id)
        request = record.request
        if request.get("attachments"):
            # Only the names and sizes of a denied request's attachments are kept, never their
            # contents, so the job cannot be rebuilt as it was sent.
            raise Conflict(
                f"decision `{decision_id}` judged a request with attachments, whose contents are not "
                "kept; submit the remediated job again with them",
                code="attachments_not_kept",
                details={"remediation": offered},
            )
        body = _remediated(
            request["topic"], request["prompt"], request["labels"], request["meta"], [], offered
        )
        return await self.submit(who, tenant, body, remediated_from=decision_id)


def _require_party(who: Identity, job: Job, action: str) -> None:
    """A job's own history is written by its parties: its submitter, an approver, an admin."""
    if job.identity_id != who.id:
        who.require_role(
            "approver",
            message=f"only the submitter, an approver or an admin may {action} job `{job.id}`",
            code=Forbidden.code,
        )


def _offered(record: DecisionRecord, remediation_id: str) -> dict[str, Any] | None:
    return next((r for r in record.remediations if r.get("id") == remediation_id), None)


def _remediated(
    topic: str,
    prompt: str,
    labels: Mapping[str, str],
    meta: Mapping[str, Any],
    attachments: Sequence[Mapping[str, Any]],
    offered: Mapping[str, Any],
) -> JobRequest:
    """The job body with the rewrite `offered` applied, checked as the API checks a body (the
    rewrite comes from the policy, the rest from a request that was checked when it came in)."""
    sets = offered.get("set", {})
    # As the API's body model leaves it: absent, not null.
    meta = {k: v for k, v in meta.items() if v is not None}
    if "capability" in sets:
        meta["capability"] = sets["capability"]
    if "risk_tags" in sets:
        meta["risk_tags"] = sets["risk_tags"]
    # Derived labels are dropped by the sanitiser and derived afresh from the new job.
    request = JobRequest(
        topic=sets.get("topic", topic),
        prompt=sets.get("prompt", prompt),
        labels={**labels, **offered.get("set_labels", {})},
        meta=meta,
        attachments=attachments,
    )
    check_request(request, code="invalid_remediation")
    return request

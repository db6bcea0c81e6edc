"""The step gate: sessions, a proposed tool call's decision, and its result (DESIGN.md section 9).

Order on evaluate: the body's bounds (params an object, at most 32 levels deep and 256 KiB), the
session (the caller's own: another identity's or tenant's reads as absent), the step already
decided under that id (the same params answer the same record; other params are a conflict),
then the decision pipeline (`control/decide.py`: containment, the identity's adapter scope, for
an adapter of the bundle's catalog its action (one it does not list is 404 `unknown_action`), its
params schema (rule `param_schema`) and its per-session rate (rule `rate_limit`), then policy) on
the context `domain.steps.step_context` builds, the one the offline tools build too,
with the session's stored history and provenance. The step, its record and the record's audit
entry (params as their schema, never their values) are stored in one transaction, with an
approval request when the answer is `require_approval` (`control/step_approvals.py`, which also
answers such a step when it is asked again once a person decided).

A result is taken for an allowed step only, once; its output passes the output gate and an
untrusted action's output (every action's, unless its catalog entry says `output: trusted`) is
kept for provenance within the session's bound (past it the session
fails closed: `from_untrusted` holds for every value).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from gatehouse.audit.events import AuditEvent
from gatehouse.control.decide import SCOPE_RULE, Check, DecisionPipeline
from gatehouse.control.deps import Deps
from gatehouse.control.incidents import Incidents
from gatehouse.control.outputs import OutputGate
from gatehouse.control.session_replay import check_detail, replay_view
from gatehouse.control.session_views import SessionView, SessionViews
from gatehouse.control.step_approvals import StepApprovals
from gatehouse.control.steprates import SessionRates
from gatehouse.crypto import canonical
from gatehouse.domain import states
from gatehouse.domain.identity import Identity
from gatehouse.domain.ids import new_id, now
from gatehouse.domain.jobs import Job
from gatehouse.domain.records import DecisionRecord, Verdict, make_record
from gatehouse.domain.sessions import DEFAULT_SESSION_BOUND, Session, SessionStep, params_schema, sha256_of
from gatehouse.domain.step_findings import provenance_of
from gatehouse.domain.step_replay import history_step, requester_role, session_step, step_job
from gatehouse.domain.steps import (
    PARAM_SCHEMA_RULE,
    HistoryStep,
    catalog_of,
    param_problem,
    step_context,
    target_of,
)
from gatehouse.errors import BadRequest, Conflict, NotFound, PayloadTooLarge
from gatehouse.output.gate import OutputVerdict
from gatehouse.policy import ALLOW, Provenance
from gatehouse.policy.catalog import Catalog

__all__ = ["MAX_PARAMS_BYTES", "MAX_PARAMS_DEPTH", "Evaluated", "StepGate", "StepResult"]

MAX_PARAMS_BYTES = 256 * 1024
MAX_PARAMS_DEPTH = 32
_STAGE = "step"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_RUNNING = (states.DISPATCHED, states.RUNNING)
RATE_RULE = "rate_limit"


@dataclass(frozen=True, slots=True)
class Evaluated:
    session: Session
    record: DecisionRecord
    replayed: bool = False
    claimed: bool = False  # stored claimed for execution by this caller (`evaluate(claim=True)`)


@dataclass(frozen=True, slots=True)
class StepResult:
    session: Session
    step: SessionStep
    verdict: OutputVerdict
    output: Any  # as the agent may see it: redacted, or None when withheld

    def to_public(self) -> dict[str, Any]:
        return {
            "session_id": self.session.id,
            "step_id": self.step.step_id,
            "target": self.step.target,
            "status": self.step.status,
            "output": self.output,
            "withheld": self.verdict.decision == "quarantine",
            "output_decision": self.verdict.to_dict(),
        }


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            deepest = max(deepest, d)
            if d <= MAX_PARAMS_DEPTH:
                stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            deepest = max(deepest, d)
            if d <= MAX_PARAMS_DEPTH:
                stack.extend((x, d + 1) for x in v)
    return deepest


def check_params(params: Any) -> dict[str, Any]:
    """`params` if it is an object within the bounds; else `BadRequest`/`PayloadTooLarge`."""
    if not isinstance(params, dict):
        raise BadRequest(
            f"`params` must be a JSON object, got {type(params).__name__}", code="invalid_params"
        )
    if _depth(params) > MAX_PARAMS_DEPTH:
        raise BadRequest(f"`params` is nested deeper than {MAX_PARAMS_DEPTH} levels", code="params_too_deep")
    size = len(canonical(params))
    if size > MAX_PARAMS_BYTES:
        raise PayloadTooLarge(
            f"`params` has {size} bytes (at most {MAX_PARAMS_BYTES})", code="params_too_large"
        )
    return params


def _checked_id(value: str, what: str) -> str:
    if not _ID.match(value):
        raise BadRequest(f"bad {what} `{value[:64]}`", code=f"invalid_{what.replace(' ', '_')}")
    return value


def _adapter_scope(who: Identity, adapter: str, action: str) -> Check:
    def run() -> str | None:
        if who.may_use_adapter(adapter, action):
            return None
        return f"`{adapter}:{action}` is outside the adapter scope of identity `{who.name}`"

    return Check(SCOPE_RULE, run)


def _rate_check(
    rates: SessionRates, catalog: Catalog, tenant: str, session_id: str, adapter: str
) -> Check | None:
    cataloged = catalog.adapter(adapter)
    if cataloged is None or cataloged.rate_limit is None:
        return None
    limit = cataloged.rate_limit

    def run() -> str | None:
        if rates.take(tenant, session_id, adapter, limit):
            return None
        return f"adapter `{cataloged.name}` allows {limit} steps a second per session (RATE/BURST)"

    return Check(RATE_RULE, run)


def step_hash(session_id: str, step_id: str, target: str, params: Any) -> str:
    return sha256_of({"session_id": session_id, "step_id": step_id, "target": target, "params": params})


def history_of(steps: list[SessionStep]) -> tuple[HistoryStep, ...]:
    return tuple(history_step(s) for s in steps)


def history_facts(steps: list[SessionStep]) -> dict[str, Any]:
    return {
        "untrusted_read": any(s.result == ALLOW and s.status is not None and not s.trusted for s in steps),
        "step_count": len(steps),
        "denied_count": sum(1 for s in steps if s.result == "deny"),
    }


class StepGate:
    def __init__(
        self,
        *,
        deps: Deps,
        pipeline: DecisionPipeline,
        incidents: Incidents,
        outputs: OutputGate,
        approvals: StepApprovals,
    ) -> None:
        self.outputs = outputs
        self.approvals = approvals
        self.store = deps.store
        self.kernel = deps.kernel
        self.metrics = deps.metrics
        self.pipeline = pipeline
        self.incidents = incidents
        self.rates = SessionRates()
        self.views = SessionViews(self.store, bound=DEFAULT_SESSION_BOUND)

    @property
    def bound(self) -> int:
        """Characters of untrusted output a session keeps for provenance (past it: fail closed)."""
        return self.views.bound

    @bound.setter
    def bound(self, value: int) -> None:
        self.views.bound = value

    # sessions -----------------------------------------------------------------------------

    async def open_session(self, who: Identity, tenant: str, *, session_id: str | None, task: str) -> Session:
        who.require_role("agent", message=f"identity `{who.name}` needs the agent role to open sessions")
        sid = _checked_id(session_id, "session id") if session_id is not None else new_id("ses")
        session = Session(id=sid, tenant=tenant, identity_id=who.id, task=task, created_at=now())
        try:
            await self.store.add_session(session)
        except Conflict:
            raise Conflict(f"session `{sid}` exists already", code="session_exists") from None
        return session

    async def session(self, who: Identity, tenant: str, session_id: str) -> Session:
        """The caller's session `session_id` (an admin's: any of the tenant's), or 404."""
        s = await self.store.get_session(session_id, tenant)
        if s is None or (s.identity_id != who.id and not who.is_admin):
            raise NotFound(f"no session `{session_id}`", code="session_not_found")
        return s

    async def show(
        self, who: Identity, tenant: str, session_id: str, *, detail: str | None = None
    ) -> dict[str, Any]:
        """The session, its steps and their decisions; `detail="replay"` (admins only) adds what
        judging each step again needs (`control/session_replay.py`)."""
        # Before the lookup: a caller who may not read a replay learns nothing of the session.
        if check_detail(detail) is not None:
            who.require_role(
                "admin", message=f"identity `{who.name}` needs the admin role to read a session for replay"
            )
        s = await self.session(who, tenant, session_id)
        steps = await self.store.session_steps(s.id)
        records = {}
        for step in steps:
            record = await self.store.decision(step.decision_id, tenant)
            if record is not None:
                records[step.decision_id] = record
        answer = {
            **s.to_public(),
            "steps": [x.to_public() for x in steps],
            "decisions": [r.to_public() for r in records.values()],
            "history": history_facts(steps),
        }
        if detail == "replay":
            answer.update(await replay_view(self.store, who, tenant, s, steps, records, bound=self.bound))
        return answer

    async def _job(self, who: Identity, tenant: str, job_id: str) -> Job:
        job = await self.store.get_job(job_id, tenant)
        if job is None or job.identity_id != who.id:
            raise NotFound(f"no job `{job_id}`", code="job_not_found")
        if job.status not in _RUNNING:
            raise Conflict(
                f"job `{job_id}` is `{job.status}`: steps are taken for dispatched or running jobs only",
                code="job_not_running",
            )
        return job

    async def _resolve(
        self, who: Identity, tenant: str, session_id: str | None, job_id: str | None, *, open_new: bool
    ) -> tuple[Session, Job | None]:
        if session_id is not None and job_id is not None:
            raise BadRequest("give one of `session_id` and `job_id`, not both", code="invalid_step")
        if job_id is not None:
            job = await self._job(who, tenant, job_id)
            s = await self.store.get_session(job.id, tenant)
            if s is None:
                if not open_new:
                    raise NotFound(f"no session `{job.id}`", code="session_not_found")
                s = Session(id=job.id, tenant=tenant, identity_id=who.id, task=job.prompt, created_at=now(),
                            job_id=job.id)  # fmt: skip
                try:
                    await self.store.add_session(s)
                except Conflict:
                    s = await self.session(who, tenant, job.id)
            return s, job
        if session_id is not None:
            return await self.session(who, tenant, session_id), None
        if not open_new:
            raise BadRequest("a result needs `session_id` or `job_id`", code="invalid_step")
        s = Session(id=new_id("ses"), tenant=tenant, identity_id=who.id, task="", created_at=now())
        await self.store.add_session(s)
        return s, None

    # evaluate -----------------------------------------------------------------------------

    async def evaluate(
        self,
        who: Identity,
        tenant: str,
        *,
        session_id: str | None,
        job_id: str | None,
        step_id: str,
        adapter: str,
        action: str,
        params: Any,
        claim: bool = False,
    ) -> Evaluated:
        """Decide a proposed step. `claim` (Gatehouse executes the step itself): an allowed step
        is stored claimed for this caller, so no other execution of it can start."""
        who.require_role("agent", message=f"identity `{who.name}` needs the agent role to take steps")
        started = time.perf_counter()
        params = check_params(params)
        _checked_id(step_id, "step id")
        for value, what in ((adapter, "adapter"), (action, "action")):
            if not _NAME.match(value):
                raise BadRequest(f"bad {what} `{value[:64]}`", code=f"invalid_{what}")
        session, job = await self._resolve(who, tenant, session_id, job_id, open_new=True)
        target = target_of(adapter, action)
        digest = step_hash(session.id, step_id, target, params)
        view = await self.views.view(session)
        # The view reflects at least the session row just read: a step id it lacks was not
        # decided then (one decided meanwhile loses at `add_step` and is replayed there).
        if step_id in view.steps:
            replay = await self._replay(session, step_id, digest, tenant, who=who, job=job)
            if replay is not None:
                return replay
        steps = view.ordered()
        prov = view.provenance if view.provenance is not None and not session.bounded else None
        verdict = await self._verdict(who, tenant, session, job, adapter, action, params, steps,
                                      provenance=prov, view=view)  # fmt: skip
        approval = None
        if verdict.result == "require_approval":
            approval = self.approvals.request(
                verdict, tenant=tenant, requested_by=who.id, session_id=session.id, step_id=step_id,
                target=target, step_hash=digest,
            )  # fmt: skip
        record = make_record(
            verdict,
            stage=_STAGE,
            job_id=job.id if job is not None else None,
            tenant=tenant,
            job_hash=None,
            extra={
                "session_id": session.id,
                "step_id": step_id,
                "target": target,
                "step_hash": digest,
                "actor": who.id,
                "params_schema": params_schema(params),
                **({"approval_id": approval.id} if approval is not None else {}),
            },
        )
        stored = SessionStep(
            session_id=session.id,
            step_id=step_id,
            adapter=adapter,
            action=action,
            params=params,
            step_hash=digest,
            decision_id=record.decision_id,
            result=record.result,
            rule_id=record.rule_id,
            created_at=record.timestamp,
            approval_id=approval.id if approval is not None else None,
            claimed_at=record.timestamp if claim and record.result == ALLOW else None,
        )
        try:
            revision = await self.store.add_step(stored, record, approval)
        except Conflict:
            # The same step id won a race with us: answer as if it had come first.
            replay = await self._replay(session, step_id, digest, tenant)
            if replay is None:
                raise
            return replay
        self.views.absorb(session, stored.evolve(rev=revision))
        self.metrics.step_decision(record.result, record.rule_id)
        if approval is not None:
            self.metrics.approval_event("requested")
        self.metrics.step_seconds.observe(time.perf_counter() - started)
        return Evaluated(session=session, record=record, claimed=stored.claimed_at is not None)

    async def _verdict(
        self,
        who: Identity,
        tenant: str,
        session: Session,
        job: Job | None,
        adapter: str,
        action: str,
        params: dict[str, Any],
        steps: list[SessionStep],
        *,
        approved: bool | None = None,
        provenance: Provenance | None = None,
        view: SessionView | None = None,
    ) -> Verdict:
        """The pipeline's verdict on a step after `steps` (its session's history), with the
        session's provenance (built from `steps` when not given) and, when given, the session's
        `view` holding `steps` already converted."""
        # The same functions build a recorded step again for `policy diff --decisions`.
        job_fields = step_job(
            tenant=tenant,
            requester_role=requester_role(who),
            topic=job.topic if job is not None else None,
            capability=job.meta.get("capability") if job is not None else None,
            approved=approved,
        )
        step = session_step(session, adapter=adapter, action=action, params=params, job=job_fields,
                            history=view.history if view is not None else history_of(steps))  # fmt: skip
        policy = self.kernel.policy
        catalog = catalog_of(policy)
        ctx = step_context(
            policy,
            step,
            provenance=provenance if provenance is not None else provenance_of(session, steps, self.bound),
            classifier=self.kernel.classifier,
            # A shadow bundle is judged on this same context: it may read what the live one does
            # not (`detected`, `labels.*`), so the context is whole while one is installed.
            lean=not self._shadowing(),
            facts=view.facts(catalog) if view is not None else None,
        )
        # After the scope, so that a caller outside it learns nothing of the catalog. The schema
        # check raises `unknown_action` (a 404, no decision) for a tool a listing adapter lacks.
        checks = [
            _adapter_scope(who, adapter, action),
            Check(PARAM_SCHEMA_RULE, partial(param_problem, catalog, adapter, action, params)),
        ]
        # A step asked again once a person decided (`approved` given) was counted when first asked.
        rate = _rate_check(self.rates, catalog, tenant, session.id, adapter) if approved is None else None
        if rate is not None:
            checks.append(rate)
        return await self.pipeline.judge(
            tenant=tenant, identity_id=who.id, ctx=ctx, stage=_STAGE, checks=checks, adapter=adapter
        )

    def _shadowing(self) -> bool:
        shadow = self.pipeline.shadow
        return shadow is not None and shadow.current is not None

    async def _replay(
        self,
        session: Session,
        step_id: str,
        digest: str,
        tenant: str,
        *,
        who: Identity | None = None,
        job: Job | None = None,
    ) -> Evaluated | None:
        """The step's decision when it was decided already (409 on other params). A step that
        waits for approval is answered by `StepApprovals.resume` when `who` asks again."""
        known = await self.store.get_step(session.id, step_id)
        if known is None:
            return None
        if known.step_hash != digest:
            raise Conflict(
                f"step `{step_id}` of session `{session.id}` was decided with other params or target",
                code="step_conflict",
                details={"decision_id": known.decision_id},
            )
        record = await self.store.decision(known.decision_id, tenant)
        if record is None:  # pragma: no cover - stored in the same transaction as the step
            raise NotFound(f"no decision for step `{step_id}`", code="decision_not_found")
        if who is None or known.result != "require_approval" or known.approval_id is None:
            return Evaluated(session=session, record=record, replayed=True)
        asker = who

        async def rejudge(approved: bool) -> Verdict:
            # Judged on the history the step had when it was first asked.
            steps = await self.store.session_steps(session.id)
            before = steps[: next(i for i, s in enumerate(steps) if s.step_id == step_id)]
            return await self._verdict(asker, tenant, session, job, known.adapter, known.action,
                                       known.params, before, approved=approved)  # fmt: skip

        record, fresh = await self.approvals.resume(known, record, rejudge)
        if fresh:
            self.metrics.step_decision(record.result, record.rule_id)
        return Evaluated(session=session, record=record, replayed=not fresh)

    # result -------------------------------------------------------------------------------

    async def result(
        self,
        who: Identity,
        tenant: str,
        *,
        session_id: str | None,
        job_id: str | None,
        step_id: str,
        status: str,
        output: Any,
        audit: Callable[[OutputVerdict], Sequence[AuditEvent]] | None = None,
        session: Session | None = None,
    ) -> StepResult:
        """Report an allowed step's result: judged by the output gate, kept (within the session's
        bound) for provenance. `audit`, given the output gate's verdict, names further audit
        entries (the broker's account of its call) stored in the same transaction. `session`:
        the caller's session as `evaluate` just answered it (the broker), not read again."""
        job = None
        if session is None or job_id is not None:
            session, job = await self._resolve(who, tenant, session_id, job_id, open_new=False)
        # An allowed step stays allowed, so the view's copy serves; any other is read afresh (a
        # step that waited for approval may have been decided since).
        step = self.views.allowed(session.id, step_id) or await self.store.get_step(session.id, step_id)
        if step is None:
            raise NotFound(f"no step `{step_id}` in session `{session.id}`", code="step_not_found")
        if step.result != ALLOW:
            raise Conflict(
                f"step `{step_id}` was not allowed (`{step.result}`): it has no result to report",
                code="step_not_allowed",
            )
        snapshot = self.kernel.snapshot
        # The output gate's own answer: the same rules, and closed the same way (no bundle, or
        # an output too large to scan whole) as for a job's result.
        topic = job.topic if job is not None else None
        judged = self.outputs.verdict(output, topic=topic, target=step.target)
        # Untrusted unless the catalog says `output: trusted` (DESIGN.md section 9's default):
        # a trusted output is not kept for provenance and does not set `session.untrusted_read`.
        trusted = catalog_of(self.kernel.policy).lookup(step.adapter, step.action).trusted
        decided = DecisionRecord(
            decision_id=new_id("dec"),
            timestamp=now(),
            result=judged.decision,
            rule_id=judged.rule_id,
            reason=judged.reason,
            stage="output",
            policy_snapshot=snapshot,
            job_hash=None,
            job_id=job.id if job is not None else None,
            tenant=tenant,
            extra={
                "session_id": session.id,
                "step_id": step_id,
                "target": step.target,
                "actor": who.id,
                "output_decision": judged.to_dict(),
                "worker_status": status,
            },
        )
        # The result, the output gate's decision on it and the caller's audit entries: one
        # transaction (one commit on the hot path, and never a result without its decision).
        done = await self.store.record_step_result(
            session.id, step_id, status=status, output=output, trusted=trusted, bound=self.bound,
            record=decided, events=audit(judged) if audit is not None else (),
        )  # fmt: skip
        if done is None:
            raise Conflict(f"step `{step_id}` has a result already", code="step_result_recorded")
        self.views.absorb(session, done)
        self.metrics.output_decisions.labels(judged.decision).inc()
        visible = None if judged.decision == "quarantine" else judged.redacted
        return StepResult(session=session, step=done, verdict=judged, output=visible)

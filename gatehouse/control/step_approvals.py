"""Step approvals: a proposed tool call that waits for a person (DESIGN.md section 9).

Theory of operation. A step decided `require_approval` is stored with an approval request of
`kind: step` in the same transaction (`StepGate.evaluate` -> `request`). An approver of the
tenant who is not the step's own identity approves it (a signed token naming that very step) or
rejects it (`approve`, `reject`; `ApprovalFlow` sends step approvals here). Nothing happens to the
step until its agent asks again with the identical step: `resume` then checks the stored token
(`domain.approvals.step_token_problem`: signature and key id of this service, the approval, the
session, the step id, the target, the step hash, expiry), judges the step again with `approved:
true` in its context and moves the step's decision to `allow`, consuming the token's nonce in
the same transaction (`Store.settle_step`). From then on the step's decision *is* that allow
record, so the same step answers it again; a token that fails a check, a nonce used already, a
rejection or an expiry move the step to `deny` instead. One decision per step holds throughout:
each move is a compare-and-set on the decision the step had.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from gatehouse.control.deps import Deps
from gatehouse.control.incidents import Incidents
from gatehouse.crypto import SigningKey
from gatehouse.domain import states
from gatehouse.domain.approvals import Approval, issue_step_token, new_step_request, step_token_problem
from gatehouse.domain.changes import ApprovalUpdate
from gatehouse.domain.identity import Identity
from gatehouse.domain.ids import new_id, now
from gatehouse.domain.records import DecisionRecord, Verdict, make_record
from gatehouse.domain.sessions import Session, SessionStep, params_schema
from gatehouse.domain.step_findings import param_findings, provenance_of, untrusted_checks
from gatehouse.domain.steps import APPROVED, catalog_of
from gatehouse.errors import Conflict, Forbidden, NotFound
from gatehouse.policy import ALLOW, Decision

__all__ = ["RECENT_STEPS", "StepApprovals"]

RECENT_STEPS = 5  # the session's steps an approver sees beside the one they decide on
_HISTORY = 20  # installed bundles searched for the serial of an approval's snapshot
_REQUIRE = "require_approval"
# How a step approval that can no longer release its step is recorded: its rule id.
_ENDED = {
    states.APPROVAL_EXPIRED: "approval_expired",
    states.APPROVAL_VOID: "approval_void",
    states.APPROVAL_STALE: "approval_stale",
    states.APPROVAL_CONSUMED: "approval_replayed",
}

Rejudge = Callable[[bool], Awaitable[Verdict]]


def _step_fields(a: Approval) -> dict[str, Any]:
    return {"session_id": a.session_id, "step_id": a.step_id, "target": a.target, "approval_id": a.id}


class StepApprovals:
    def __init__(self, *, deps: Deps, key: SigningKey, incidents: Incidents) -> None:
        self.store = deps.store
        self.kernel = deps.kernel
        self.metrics = deps.metrics
        self.settings = deps.settings
        self.key = key
        self.incidents = incidents

    # asking -------------------------------------------------------------------------------

    def request(
        self,
        verdict: Verdict,
        *,
        tenant: str,
        requested_by: str,
        session_id: str,
        step_id: str,
        target: str,
        step_hash: str,
    ) -> Approval:
        """The approval request a `require_approval` verdict on a step makes."""
        d = verdict.decision
        return new_step_request(
            tenant=tenant,
            session_id=session_id,
            step_id=step_id,
            target=target,
            step_hash=step_hash,
            requested_by=requested_by,
            rule_id=d.rule_id,
            reason=d.reason,
            ttl=d.approval_ttl,
            snapshot=verdict.snapshot,
            at=now(),
        )

    async def describe(self, a: Approval) -> dict[str, Any]:
        """A queue item: the approval, the params as the policy saw them and the session's
        recent steps (what the approver needs to judge the call in its context); the step's
        decision record; `derived`, what the detectors and the classifier find in the params
        (`domain.step_findings`), with `untrusted_checks` (the fields the deciding rule tested
        with `from_untrusted`) and the action's catalog `effect`; and `policy`, the bundle that
        asked (`name` while it runs, `snapshot`, `serial`, `current`)."""
        item = a.to_public()
        item.pop("token", None)
        session = await self.store.get_session(a.session_id or "", a.tenant)
        steps = await self.store.session_steps(session.id) if session is not None else []
        at = next((i for i, s in enumerate(steps) if s.step_id == a.step_id), len(steps))
        step = steps[at] if at < len(steps) else None
        requester = await self.store.get_identity(a.requested_by)
        record = await self.store.decision(step.decision_id, a.tenant) if step is not None else None
        item.update(
            params=step.params if step is not None else None,
            decision=record.to_public() if record is not None else None,
            derived=self._findings(a, session, steps[:at], step),
            policy=await self._policy_of(a.policy_snapshot),
            job_id=session.job_id if session is not None else None,
            task=session.task if session is not None else None,
            requested_by={"id": a.requested_by, "name": requester.name if requester else None},
            recent_steps=[
                {"step_id": s.step_id, "target": s.target, "decision": s.result, "rule_id": s.rule_id}
                for s in steps[max(0, at - RECENT_STEPS) : at]
            ],
        )
        return item

    def _findings(
        self, a: Approval, session: Session | None, earlier: list[SessionStep], step: SessionStep | None
    ) -> dict[str, Any] | None:
        """What the detectors and the classifier find in the step's params, where its values
        came from, and which fields the deciding rule checked with `from_untrusted`."""
        if step is None or session is None:
            return None
        bound = self.settings.session_provenance_chars
        found = param_findings(
            step.params, classifier=self.kernel.classifier, provenance=provenance_of(session, earlier, bound)
        )
        policy = self.kernel.policy
        rule = None
        if policy is not None and policy.snapshot == a.policy_snapshot:
            rule = next((r for r in policy.rules if r.id == a.rule_id), None)
        found["untrusted_checks"] = untrusted_checks(rule)
        found["effect"] = catalog_of(policy).lookup(step.adapter, step.action).effect
        return found

    async def _policy_of(self, snapshot: str | None) -> dict[str, Any]:
        """The bundle that asked for the approval: its name while it still runs, and the serial
        it was installed with (the newest install of that snapshot)."""
        running = self.kernel.policy
        current = running is not None and running.snapshot == snapshot
        serial = None
        for row in await self.store.policy_history(limit=_HISTORY):
            if row.snapshot == snapshot:
                serial = row.serial
                break
        return {
            "name": running.name if current and running is not None else None,
            "snapshot": snapshot,
            "serial": serial,
            "current": current,
        }

    # deciding -----------------------------------------------------------------------------

    def _record(
        self,
        a: Approval,
        *,
        result: str,
        rule_id: str,
        reason: str,
        event: str,
        stage: str = "approval",
        **more: Any,
    ) -> DecisionRecord:
        return DecisionRecord(
            decision_id=new_id("dec"),
            timestamp=now(),
            result=result,
            rule_id=rule_id,
            reason=reason,
            stage=stage,
            policy_snapshot=a.policy_snapshot if stage == "approval" else self.kernel.snapshot,
            job_hash=None,
            tenant=a.tenant,
            extra={**_step_fields(a), "step_hash": a.step_hash, "approval_event": event, **more},
        )

    async def _open(self, who: Identity, a: Approval) -> Approval:
        if a.requested_by == who.id:
            raise Forbidden("nobody approves a step they proposed", code="self_approval")
        if a.status != states.APPROVAL_PENDING:
            raise Conflict(
                f"approval `{a.id}` is `{a.status}`, not waiting for a decision",
                code="not_pending",
                details={"status": a.status},
            )
        if now() >= a.expires_at:
            await self.expire(a)
            raise Conflict(f"approval `{a.id}` expired", code="approval_expired")
        return a

    async def approve(self, who: Identity, a: Approval, comment: str | None) -> dict[str, Any]:
        self.incidents.require_open(who, a.tenant, "approve or reject a step")
        a = await self._open(who, a)
        at = now()
        token = issue_step_token(a, approver=who.id, key=self.key, at=at)
        update = ApprovalUpdate(
            a.id,
            "approve",
            approver_id=who.id,
            decided_at=at,
            comment=comment,
            token=token,
            nonce=token["claims"]["nonce"],
        )
        reason = f"approved by {who.name}" + (f": {comment}" if comment else "")
        record = self._record(
            a, result=ALLOW, rule_id=a.rule_id, reason=reason, event=states.APPROVAL_APPROVED
        )
        return {**await self._decide(a, update, record), "token": token}

    async def reject(self, who: Identity, a: Approval, comment: str | None) -> dict[str, Any]:
        self.incidents.require_open(who, a.tenant, "approve or reject a step")
        a = await self._open(who, a)
        at = now()
        update = ApprovalUpdate(a.id, "reject", approver_id=who.id, decided_at=at, comment=comment)
        reason = f"rejected by {who.name}" + (f": {comment}" if comment else "")
        record = self._record(
            a, result="deny", rule_id=a.rule_id, reason=reason, event=states.APPROVAL_REJECTED
        )
        return await self._decide(a, update, record)

    async def _decide(self, a: Approval, update: ApprovalUpdate, record: DecisionRecord) -> dict[str, Any]:
        moved = await self.store.update_approval(update, at=record.timestamp, record=record)
        if moved is None:
            raise Conflict(f"approval `{a.id}` was decided already", code="not_pending")
        self.metrics.approval_event(moved.status)
        self.metrics.approval_seconds.observe(record.timestamp - a.requested_at)
        public = moved.to_public()
        return {"approval_id": a.id, "kind": a.kind, "status": moved.status, "approval": public}

    async def expire(self, a: Approval) -> None:
        record = self._record(
            a,
            result="deny",
            rule_id="approval_expired",
            reason="nobody approved the step in time",
            event=states.APPROVAL_EXPIRED,
        )
        if await self.store.update_approval(ApprovalUpdate(a.id, "expire"), at=now(), record=record):
            self.metrics.approval_event(states.APPROVAL_EXPIRED)

    async def find(self, approval_id: str, tenant: str) -> Approval:
        a = await self.store.approval(approval_id)
        if a is None or a.tenant != tenant:
            raise NotFound(f"no approval `{approval_id}`", code="approval_not_found")
        return a

    # the step asked again -----------------------------------------------------------------

    async def resume(
        self, step: SessionStep, record: DecisionRecord, rejudge: Rejudge
    ) -> tuple[DecisionRecord, bool]:
        """The answer to a step that waited for approval, asked again identically: the same
        record while nobody decided, else its new decision (and True: a new record)."""
        a = await self.store.approval(step.approval_id or "")
        if a is None or a.kind != "step":
            return record, False
        if a.status == states.APPROVAL_PENDING:
            if now() < a.expires_at:
                return record, False
            await self.expire(a)
            a = await self.store.approval(a.id) or a
        settle: dict[str, Any] = {}
        if a.status == states.APPROVAL_APPROVED:
            answer = await self._approved(step, a, rejudge)
            if answer is None:
                return record, False  # the kernel could not decide now: the step keeps waiting
            new, settle = answer
        elif a.status == states.APPROVAL_REJECTED:
            why = f"rejected by {a.approver_id}" + (f": {a.comment}" if a.comment else "")
            new = self._record(
                a, result="deny", rule_id=a.rule_id, reason=why, event=states.APPROVAL_REJECTED, stage="step"
            )
        else:
            rule = _ENDED.get(a.status, "approval_void")
            new = self._record(
                a,
                result="deny",
                rule_id=rule,
                stage="step",
                event=rule,
                reason=f"the step's approval is `{a.status}`: it cannot release the step",
            )
        return await self._settle(step, record, new, settle)

    async def _approved(
        self, step: SessionStep, a: Approval, rejudge: Rejudge
    ) -> tuple[DecisionRecord, dict[str, Any]] | None:
        at = now()
        problem = step_token_problem(
            a.token,
            a,
            session_id=step.session_id,
            step_id=step.step_id,
            target=step.target,
            step_hash=step.step_hash,
            key=self.key.verify_key,
            now=at,
        )
        if problem is not None:
            if problem != "expired":
                self.metrics.approval_forgery.inc()
                self.metrics.approval_event("forged")
            new = self._record(
                a,
                result="deny",
                rule_id=f"approval_{problem}",
                stage="step",
                event=problem,
                reason=f"the approval token cannot release this step ({problem})",
            )
            return new, {"approval": ApprovalUpdate(a.id, "lapse" if problem == "expired" else "invalidate")}
        same_policy = a.policy_snapshot == self.kernel.snapshot
        # On the snapshot it was given for, the approval answers the rule that asked for it
        # (rules may still read `approved`); on a newer one the step is judged afresh.
        verdict = await rejudge(same_policy)
        if verdict.fail_mode_applied and verdict.result != ALLOW:
            return None
        if same_policy and verdict.result == _REQUIRE:
            verdict = Verdict(Decision(ALLOW, a.rule_id, f"approved by {a.approver_id}"), verdict.snapshot)
        extra = {
            **_step_fields(a),
            "step_hash": step.step_hash,
            "actor": a.requested_by,
            APPROVED: verdict.result == ALLOW,
            "policy_changed": not same_policy,
        }
        if verdict.result == ALLOW:
            extra["approval_event"] = states.APPROVAL_CONSUMED
            new = make_record(verdict, stage="step", job_id=None, tenant=a.tenant, job_hash=None, extra=extra)
            return new, {"consume_nonce": a.nonce}
        if verdict.result == _REQUIRE:
            again = self.request(
                verdict,
                tenant=a.tenant,
                requested_by=a.requested_by,
                session_id=step.session_id,
                step_id=step.step_id,
                target=step.target,
                step_hash=step.step_hash,
            )
            extra.update(approval_id=again.id, approval_event=states.APPROVAL_STALE)
            new = make_record(verdict, stage="step", job_id=None, tenant=a.tenant, job_hash=None, extra=extra)
            return new, {"approval": ApprovalUpdate(a.id, "supersede"), "new_approval": again}
        new = make_record(verdict, stage="step", job_id=None, tenant=a.tenant, job_hash=None, extra=extra)
        return new, {"approval": ApprovalUpdate(a.id, "invalidate")}

    async def _settle(
        self, step: SessionStep, old: DecisionRecord, new: DecisionRecord, settle: dict[str, Any]
    ) -> tuple[DecisionRecord, bool]:
        new = _completed(new, old, step)
        moved = await self.store.settle_step(
            step.session_id, step.step_id, expected_decision_id=step.decision_id, record=new, **settle
        )
        if moved is not None:
            return new, True
        current = await self.store.get_step(step.session_id, step.step_id)
        if current is not None and current.decision_id != step.decision_id:
            # Another request settled it first: its answer is the step's decision now.
            found = await self.store.decision(current.decision_id, old.tenant)
            return (found, False) if found is not None else (old, False)
        # The step still waits, but its approval could not be used: its nonce was spent
        # already (a replay), or the approval moved. The step is denied.
        replay = DecisionRecord(
            decision_id=new_id("dec"),
            timestamp=now(),
            result="deny",
            rule_id="approval_replayed",
            reason="the approval was used already or changed: it cannot release this step",
            stage="step",
            policy_snapshot=self.kernel.snapshot,
            job_hash=None,
            job_id=old.job_id,
            tenant=old.tenant,
            extra={k: v for k, v in new.extra.items() if k not in (APPROVED, "approval_event")}
            | {"approval_event": "replayed"},
        )
        self.metrics.approval_forgery.inc()
        if await self.store.settle_step(
            step.session_id, step.step_id, expected_decision_id=step.decision_id, record=replay
        ):
            return replay, True
        current = await self.store.get_step(step.session_id, step.step_id)
        found = await self.store.decision(current.decision_id, old.tenant) if current else None
        return (found or old), False


def _completed(new: DecisionRecord, old: DecisionRecord, step: SessionStep) -> DecisionRecord:
    """Every record of a step says what the first one did: its job (a step inside a job), its
    actor, and the params as their schema (never their values)."""
    about = {"actor": old.extra.get("actor"), "params_schema": params_schema(step.params)}
    return replace(new, job_id=old.job_id, extra={**about, **new.extra})

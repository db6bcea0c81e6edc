"""A decided step as its gate judged it, rebuilt from what the session store keeps.

    step = session_step(session, adapter=..., action=..., params=..., job=step_job(...),
                        history=[history_step(s) for s in earlier])
    ctx = step_context(policy, step, provenance=provenance_of(session, earlier, bound))

The step gate (`control/steps.py`) judges a proposed step on its session's stored values: the
earlier steps as history items (`history_step`), the provenance of their kept untrusted outputs
(`domain.step_findings.provenance_of`) and the caller's job fields (`step_job`). `gatehouse
policy diff --decisions` judges a recorded step again under two bundles from the same stored
values (`GET /api/v1/sessions/{session_id}?detail=replay`), through these same functions: were the
replay to build its own context, it would test a different gate than the one that runs.

`replay_context` is the whole of it for a step whose session is given as stored: the step, the
catalog's deny before the policy (`param_schema`) if any, and the context the policy reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gatehouse.domain.identity import Identity
from gatehouse.domain.sessions import Session, SessionStep
from gatehouse.domain.step_findings import provenance_of
from gatehouse.domain.steps import APPROVED, HistoryStep, Step, pre_policy, step_context
from gatehouse.policy import Decision, Policy

__all__ = ["history_step", "replay_context", "requester_role", "session_step", "step_job"]


def history_step(step: SessionStep) -> HistoryStep:
    """How a stored step appears in the history later steps are judged on. A reported untrusted
    result counts as read even when its output was not kept (bound)."""
    reported = step.status is not None
    return HistoryStep(
        adapter=step.adapter,
        action=step.action,
        output=(step.output if step.output is not None else "") if reported else None,
        decision=step.result,
        trusted=step.trusted,
    )


def requester_role(who: Identity) -> str:
    """The `requester_role` a step of `who` is judged with: `agent` for an agent (every identity
    that takes steps has it, or is an admin), else its first role."""
    for role in ("agent", "admin"):
        if role in who.roles:
            return role
    return who.roles[0] if who.roles else "agent"


def step_job(
    *,
    tenant: str,
    requester_role: str,
    topic: str | None = None,
    capability: Any = None,
    approved: bool | None = None,
) -> dict[str, Any]:
    """The job fields a step is judged with: the caller's tenant and role, and for a step taken
    inside a job (`job_id` given) the job's topic and capability; `approved` once a person
    decided its approval."""
    job: dict[str, Any] = {"tenant": tenant, "requester_role": requester_role}
    if topic is not None:
        job["topic"] = topic
    if capability is not None:
        job["capability"] = capability
    if approved is not None:
        job[APPROVED] = approved
    return job


def session_step(
    session: Session,
    *,
    adapter: str,
    action: str,
    params: Mapping[str, Any],
    job: Mapping[str, Any],
    history: Iterable[HistoryStep],
) -> Step:
    """A proposed step in `session`, after `history` (its earlier steps as `history_step`s)."""
    return Step(
        adapter=adapter,
        action=action,
        params=params,
        job=job,
        task=session.task,
        history=history if isinstance(history, tuple) else tuple(history),
    )


def replay_context(
    policy: Policy,
    session: Session,
    earlier: Sequence[SessionStep],
    *,
    adapter: str,
    action: str,
    params: Mapping[str, Any],
    job: Mapping[str, Any],
    bound: int,
) -> tuple[Step, Decision | None, dict[str, Any]]:
    """(step, the catalog's deny before the policy or None, the policy's context) for a step of
    `session` taken after `earlier`, as the gate judges it (the whole context, not the lean one
    of the hot path: they decide alike). Raises `NotFound` (`unknown_action`) for an action the
    bundle's catalog lists an adapter without."""
    step = session_step(session, adapter=adapter, action=action, params=params, job=job,
                        history=[history_step(s) for s in earlier])  # fmt: skip
    pre = pre_policy(policy, step)
    ctx = step_context(policy, step, provenance=provenance_of(session, earlier, bound))
    return step, pre, ctx

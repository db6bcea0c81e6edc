"""A session read for replay (`GET /api/v1/sessions/{session_id}?detail=replay`, admins only).

`gatehouse policy diff --decisions` judges recorded steps again under two bundles. A step's
decision record keeps its params' schema, never their values; the session store keeps the
values, the earlier steps and their kept untrusted outputs, which is what the gate judged. This
view adds to the session's usual answer, per step, its `params`, its kept `output` and `trusted`,
and `job`: the job fields the gate judged it with (`domain.step_replay.step_job`: the tenant, the
actor's `requester_role`, and for a step taken inside a job that job's topic and capability); and
`untrusted_bound`, the characters of untrusted output a session keeps.

Outputs are given as kept, not redacted by the output gate: provenance matches whole tokens of
the kept text, so a masked span would make `from_untrusted` miss exactly the values (a key, an
account number copied from a tool's output into a later write) a candidate rule most needs to
catch, and the replay would report no change where the server would decide otherwise. That is
why the view is for admins only (an agent, approver or reviewer is refused, 403), and why every
such read is an audit entry (`session.replay_read`: who, which session, how many outputs).
"""

from __future__ import annotations

from typing import Any

from gatehouse.audit.events import AuditEvent, stream_for
from gatehouse.domain.identity import Identity
from gatehouse.domain.jobs import Job
from gatehouse.domain.records import DecisionRecord
from gatehouse.domain.sessions import Session, SessionStep
from gatehouse.domain.step_replay import requester_role, step_job
from gatehouse.errors import BadRequest
from gatehouse.store.base import Store

__all__ = ["DETAILS", "check_detail", "replay_view"]

DETAILS = ("replay",)


def check_detail(detail: str | None) -> str | None:
    if detail is not None and detail not in DETAILS:
        raise BadRequest(
            f"unknown detail `{detail[:64]}` (one of {', '.join(DETAILS)})", code="invalid_detail"
        )
    return detail


async def replay_view(
    store: Store,
    who: Identity,
    tenant: str,
    session: Session,
    steps: list[SessionStep],
    records: dict[str, DecisionRecord],
    *,
    bound: int,
) -> dict[str, Any]:
    """The replay additions to the session's answer (see the module docstring); audited."""
    who.require_role(
        "admin", message=f"identity `{who.name}` needs the admin role to read a session for replay"
    )
    jobs: dict[str, Job | None] = {}
    roles: dict[str, str] = {}
    out = []
    for step in steps:
        record = records.get(step.decision_id)
        job = None
        role = "agent"
        if record is not None:
            if record.job_id:
                if record.job_id not in jobs:
                    jobs[record.job_id] = await store.get_job(record.job_id, tenant)
                job = jobs[record.job_id]
            actor = record.extra.get("actor")
            if isinstance(actor, str):
                if actor not in roles:
                    identity = await store.get_identity(actor)
                    roles[actor] = requester_role(identity) if identity is not None else "agent"
                role = roles[actor]
        fields = step_job(
            tenant=tenant,
            requester_role=role,
            topic=job.topic if job is not None else None,
            capability=job.meta.get("capability") if job is not None else None,
        )
        out.append({**step.to_replay(), "job": fields})
    kept = sum(1 for s in steps if s.output is not None)
    await store.append_audit(
        [
            AuditEvent(
                stream_for(tenant),
                "session.replay_read",
                {"session_id": session.id, "read_by": who.id, "steps": len(steps), "outputs": kept},
            )
        ]
    )
    return {"detail": "replay", "untrusted_bound": bound, "steps": out}

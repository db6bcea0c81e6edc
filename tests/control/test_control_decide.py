"""The one decision pipeline, through the services that use it: containment, then the caller's
scope, then the kernel; and the dispatch gate judges again with what holds at dispatch time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from plane_support import POLICY, add_identity

from gatehouse.control.plane import ControlPlane
from gatehouse.domain import states
from gatehouse.domain.records import Verdict
from gatehouse.domain.requests import JobRequest

pytestmark = pytest.mark.anyio


def count_kernel_calls(plane: ControlPlane, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    stages: list[str] = []
    decide = plane.kernel.decide

    async def spy(ctx: Mapping[str, Any], *, stage: str) -> Verdict:
        stages.append(stage)
        return await decide(ctx, stage=stage)

    monkeypatch.setattr(plane.kernel, "decide", spy)
    return stages


async def test_containment_comes_before_scope_and_scope_before_the_kernel(
    plane: ControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin, _ = await add_identity(plane, "ops", roles=("admin",), tenant="*")  # a global admin
    narrow, _ = await add_identity(plane, "narrow", topics=("job.demo.**",))
    stages = count_kernel_calls(plane, monkeypatch)
    outside = JobRequest(topic="job.frozen.x")  # out of scope, and denied by the policy too

    # Scope before the kernel: the policy is never asked about a job outside the scope.
    record = await plane.submit_gate.simulate(narrow, "default", outside)
    assert (record.result, record.rule_id) == ("deny", "identity_scope")
    assert stages == []

    # Containment before scope.
    await plane.incidents.contain(admin, kind="tenant", target="default", reason="drill")
    record = await plane.submit_gate.simulate(narrow, "default", outside)
    assert (record.result, record.rule_id) == ("deny", "incident_containment")
    assert stages == []

    # In scope and not contained: the kernel decides.
    await plane.incidents.lift(admin, (await plane.incidents.list(active_only=True))[0].id)
    record = await plane.submit_gate.simulate(narrow, "default", JobRequest(topic="job.demo.echo"))
    assert (record.result, stages) == ("allow", ["simulate"])


async def test_explain_reports_the_steps_before_the_policy(plane: ControlPlane) -> None:
    admin, _ = await add_identity(plane, "ops", roles=("admin",), tenant="*")  # a global admin
    narrow, _ = await add_identity(plane, "narrow", topics=("job.demo.**",))
    out = await plane.submit_gate.explain(narrow, "default", JobRequest(topic="job.frozen.x"))
    assert (out["winner"], out["identity_scope"], out["containment"]) == ("identity_scope", "denied", "ok")
    out = await plane.submit_gate.explain(narrow, "default", JobRequest(topic="job.demo.echo"))
    assert (out["decision"]["decision"], out["identity_scope"]) == ("allow", "ok")
    await plane.incidents.contain(admin, kind="identity", target=narrow.id, reason="drill")
    out = await plane.submit_gate.explain(narrow, "default", JobRequest(topic="job.demo.echo"))
    assert (out["winner"], out["containment"]) == ("incident_containment", "contained")
    # Explain and simulate agree.
    record = await plane.submit_gate.simulate(narrow, "default", JobRequest(topic="job.demo.echo"))
    assert record.rule_id == out["winner"]


async def test_a_denied_submit_stores_no_job_and_an_allowed_one_is_queued(plane: ControlPlane) -> None:
    agent, _ = await add_identity(plane, "agent")
    denied = await plane.submit_gate.submit(agent, "default", JobRequest(topic="job.frozen.x"))
    assert (denied.stored, denied.record.rule_id) == (False, "deny-frozen")
    assert await plane.store.get_job(denied.job.id) is None
    allowed = await plane.submit_gate.submit(agent, "default", JobRequest(topic="job.demo.echo", prompt="hi"))
    stored = await plane.store.get_job(allowed.job.id)
    assert stored is not None and stored.status == states.QUEUED


async def test_dispatch_judges_again_with_the_current_policy(plane: ControlPlane) -> None:
    agent, _ = await add_identity(plane, "agent")
    submitted = await plane.submit_gate.submit(agent, "default", JobRequest(topic="job.later.x"))
    assert submitted.job.status == states.QUEUED
    # The policy changes while the job waits in the queue: dispatch asks the new one.
    await plane.installer.install(POLICY.replace("job.frozen.**", "job.later.**"), None, by="test")
    leased = await plane.leases.lease(owner="w", topics=["job.**"], max_jobs=5, lease_seconds=30)
    assert leased == []
    job = await plane.store.get_job(submitted.job.id)
    assert job is not None and job.status == states.DENIED
    dispatch = [r for r in await plane.store.decisions(job.id) if r.stage == "dispatch"]
    assert [(r.result, r.rule_id, r.policy_snapshot) for r in dispatch] == [
        ("deny", "deny-frozen", plane.kernel.snapshot)
    ]


async def test_dispatch_denies_a_queued_job_of_a_tenant_contained_after_submit(plane: ControlPlane) -> None:
    admin, _ = await add_identity(plane, "ops", roles=("admin",), tenant="*")  # a global admin
    agent, _ = await add_identity(plane, "agent", tenant="acme")
    submitted = await plane.submit_gate.submit(agent, "acme", JobRequest(topic="job.demo.echo"))
    await plane.incidents.contain(admin, kind="tenant", target="acme", reason="drill")
    assert await plane.leases.lease(owner="w", topics=["job.**"], max_jobs=5, lease_seconds=30) == []
    job = await plane.store.get_job(submitted.job.id)
    assert job is not None and job.status == states.DENIED
    [record] = [r for r in await plane.store.decisions(job.id) if r.stage == "dispatch"]
    assert record.rule_id == "incident_containment"


async def test_a_leased_job_finishes_through_the_output_gate_the_plane_owns(plane: ControlPlane) -> None:
    agent, _ = await add_identity(plane, "agent")
    submitted = await plane.submit_gate.submit(agent, "default", JobRequest(topic="job.demo.echo"))
    [leased] = await plane.leases.lease(owner="w", topics=["job.demo.**"], max_jobs=1, lease_seconds=30)
    assert leased.id == submitted.job.id
    done = await plane.leases.finish(owner="w", job_id=leased.id, status="succeeded", output={"ok": 1})
    assert done.status == states.SUCCEEDED
    [output] = [r for r in await plane.store.decisions(done.id) if r.stage == "output"]
    assert output.result == "allow"
    assert plane.leases.outputs is plane.outputs

"""One role check (`Identity.require_role`), with the conventions the services keep."""

from __future__ import annotations

import pytest
from plane_support import add_identity

from gatehouse.control.plane import ControlPlane
from gatehouse.domain.identity import Identity
from gatehouse.domain.requests import JobRequest
from gatehouse.errors import Forbidden

pytestmark = pytest.mark.anyio


def _who(*roles: str) -> Identity:
    return Identity(
        id="idn_x", name="x", tenant="t", roles=roles, topics=("**",), capabilities=(), created_at=0
    )


def test_an_admin_passes_a_role_check_unless_the_role_is_a_person_s_judgement() -> None:
    _who("admin").require_role("worker")
    with pytest.raises(Forbidden) as caught:
        _who("admin").require_role("approver", admin=False)
    assert caught.value.code == "missing_role"
    _who("approver").require_role("approver", admin=False)
    with pytest.raises(Forbidden):
        _who("agent").require_role("worker", "reviewer")


async def test_an_admin_without_the_approver_role_cannot_approve(plane: ControlPlane) -> None:
    admin, _ = await add_identity(plane, "ops", roles=("admin",))
    with pytest.raises(Forbidden) as caught:
        await plane.approvals.pending(admin, "default", "pending")
    assert caught.value.code == "missing_role"


async def test_only_the_submitter_an_approver_or_an_admin_cancels(plane: ControlPlane) -> None:
    agent, _ = await add_identity(plane, "agent")
    other, _ = await add_identity(plane, "other")
    admin, _ = await add_identity(plane, "ops", roles=("admin",))
    job = (await plane.submit_gate.submit(agent, "default", JobRequest(topic="job.x.y"))).job
    with pytest.raises(Forbidden) as caught:
        await plane.submit_gate.cancel(other, "default", job.id)
    assert caught.value.code == "forbidden"
    assert (await plane.submit_gate.cancel(admin, "default", job.id)).status == "cancelled"

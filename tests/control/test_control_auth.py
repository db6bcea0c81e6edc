"""Authentication without HTTP: an API key and a tenant header -> the acting principal."""

from __future__ import annotations

import pytest
from plane_support import add_identity

from gatehouse.control.plane import ControlPlane
from gatehouse.errors import Forbidden, Unauthorized

pytestmark = pytest.mark.anyio


async def test_a_key_authenticates_its_identity_in_its_own_tenant(plane: ControlPlane) -> None:
    agent, key = await add_identity(plane, "agent", tenant="acme")
    who = await plane.auth.authenticate(key, None)
    assert (who.identity.id, who.tenant) == (agent.id, "acme")
    assert (await plane.auth.authenticate(key, "acme")).tenant == "acme"


@pytest.mark.parametrize(
    ("key", "code"),
    [(None, "missing_api_key"), ("", "missing_api_key"), ("ghk_nobody", "invalid_api_key")],
)
async def test_no_key_or_an_unknown_one_is_refused(plane: ControlPlane, key: str | None, code: str) -> None:
    with pytest.raises(Unauthorized) as caught:
        await plane.auth.authenticate(key, None)
    assert caught.value.code == code


async def test_a_revoked_key_is_refused(plane: ControlPlane) -> None:
    admin, _ = await add_identity(plane, "ops", roles=("admin",))
    agent, key = await add_identity(plane, "agent")
    await plane.identities.revoke(admin, agent.id)
    with pytest.raises(Unauthorized) as caught:
        await plane.auth.authenticate(key, None)
    assert caught.value.code == "invalid_api_key"  # the same answer as a key never issued


async def test_a_contained_identity_is_refused_until_lifted(plane: ControlPlane) -> None:
    admin, _ = await add_identity(plane, "ops", roles=("admin",))
    agent, key = await add_identity(plane, "agent")
    incident = await plane.incidents.contain(admin, kind="identity", target=agent.id, reason="drill")
    with pytest.raises(Forbidden) as caught:
        await plane.auth.authenticate(key, None)
    assert caught.value.code == "identity_contained"
    await plane.incidents.lift(admin, incident.id)
    assert (await plane.auth.authenticate(key, None)).identity.id == agent.id


async def test_only_a_global_admin_acts_for_another_tenant(plane: ControlPlane) -> None:
    _, agent_key = await add_identity(plane, "agent", tenant="acme")
    _, admin_key = await add_identity(plane, "ops", roles=("admin",), tenant="*")
    _, tenant_admin_key = await add_identity(plane, "acme-ops", roles=("admin",), tenant="acme")
    for key, other in ((agent_key, "other"), (tenant_admin_key, "globex")):
        with pytest.raises(Forbidden) as caught:
            await plane.auth.authenticate(key, other)
        assert caught.value.code == "tenant_mismatch"
    assert (await plane.auth.authenticate(tenant_admin_key, None)).tenant == "acme"
    assert (await plane.auth.authenticate(admin_key, "acme")).tenant == "acme"
    assert (await plane.auth.authenticate(admin_key, None)).tenant == "default"
    assert (await plane.auth.authenticate("ghk_admin", "globex")).tenant == "globex"  # the bootstrap admin


async def test_revoking_publishes_on_the_named_subject(plane: ControlPlane) -> None:
    from gatehouse.bus.subjects import IDENTITY_REVOKED

    got: list[dict[str, object]] = []

    async def handler(data: dict[str, object]) -> None:
        got.append(data)

    await plane.bus.subscribe(IDENTITY_REVOKED, handler)
    admin, _ = await add_identity(plane, "ops", roles=("admin",))
    agent, _ = await add_identity(plane, "agent")
    await plane.identities.revoke(admin, agent.id)
    import asyncio

    for _ in range(100):
        if got:
            break
        await asyncio.sleep(0.01)
    assert got == [{"id": agent.id}]

"""What the control tests share beyond fixtures: the test policy and an identity maker.

(A module of its own, not the conftest: tests import these names, and every test folder has a
`conftest` module of that one name.)
"""

from __future__ import annotations

from gatehouse.control.plane import ControlPlane
from gatehouse.domain.identity import Identity, hash_key
from gatehouse.domain.ids import new_id, now

__all__ = ["POLICY", "add_identity"]

# Deny wins for `job.exec.*` with a destructive label; production writes wait for a person;
# everything else is allowed.
POLICY = """
name: control-tests
default_decision: allow
rules:
  - id: deny-destructive
    decision: deny
    reason: destructive
    match:
      topics: ["job.exec.*"]
      labels: {risk: destructive}
  - id: deny-frozen
    decision: deny
    reason: frozen
    match:
      topics: ["job.frozen.**"]
"""


async def add_identity(
    plane: ControlPlane,
    name: str,
    *,
    tenant: str = "default",
    roles: tuple[str, ...] = ("agent",),
    topics: tuple[str, ...] = ("**",),
    capabilities: tuple[str, ...] = ("*",),
    adapters: tuple[str, ...] = (),
) -> tuple[Identity, str]:
    key = f"ghk_{name}_{new_id('k')}"
    identity = Identity(
        id=new_id("idn"),
        name=name,
        tenant=tenant,
        roles=roles,
        topics=topics,
        capabilities=capabilities,
        adapters=adapters,
        created_at=now(),
    )
    await plane.store.add_identity(identity, hash_key(key))
    return identity, key

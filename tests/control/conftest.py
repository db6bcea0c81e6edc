"""A control plane on a real SQLite store in a temporary directory, started and stopped per test.

No HTTP: the services are called as the edges call them, with domain values.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gatehouse.config import Settings
from gatehouse.control.plane import ControlPlane
from gatehouse.domain.identity import Identity, hash_key
from gatehouse.domain.ids import new_id, now

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


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def plane(tmp_path: Path) -> AsyncIterator[ControlPlane]:
    settings = Settings(
        data_dir=tmp_path / "data", builtin_workers=0, watch_policy=False, admin_key="ghk_admin"
    )
    made = ControlPlane(settings)
    await made.start()
    await made.installer.install(POLICY, None, by="test")
    yield made
    await made.stop()


async def add_identity(
    plane: ControlPlane,
    name: str,
    *,
    tenant: str = "default",
    roles: tuple[str, ...] = ("agent",),
    topics: tuple[str, ...] = ("**",),
    capabilities: tuple[str, ...] = ("*",),
) -> tuple[Identity, str]:
    key = f"ghk_{name}_{new_id('k')}"
    identity = Identity(
        id=new_id("idn"),
        name=name,
        tenant=tenant,
        roles=roles,
        topics=topics,
        capabilities=capabilities,
        created_at=now(),
    )
    await plane.store.add_identity(identity, hash_key(key))
    return identity, key

"""A control plane on a real SQLite store in a temporary directory, started and stopped per test.

No HTTP: the services are called as the edges call them, with domain values.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from plane_support import POLICY

from gatehouse.config import Settings
from gatehouse.control.plane import ControlPlane


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

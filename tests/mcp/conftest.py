"""A Gatehouse served in this process (uvicorn in a thread) fronting the test upstream, with
the adapter source injected (the gateway reads the bundle's catalog otherwise)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from mcp_support import ADMIN_KEY, HERE, Gatehouse, adapters_for

from gatehouse.api.app import create_app
from gatehouse.config import Settings


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def gatehouse(tmp_path: Path) -> Iterator[Gatehouse]:
    # Beside, not above, the data directory: the upstream's sandbox may write here.
    (tmp_path / "upstream").mkdir()
    desc, pid = tmp_path / "upstream" / "desc.txt", tmp_path / "upstream" / "upstream.pid"
    adapters = adapters_for(tmp_path, desc, pid)
    settings = Settings(data_dir=tmp_path / "data", policy_file=HERE / "policy.yaml", admin_key=ADMIN_KEY)
    app = create_app(settings)
    app.state.gateway._lookup = lambda name: adapters.get(name.lower())
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield Gatehouse(url=f"http://127.0.0.1:{port}", tmp=tmp_path, app=app, desc_file=desc, pid_file=pid)
    server.should_exit = True
    thread.join(20)

"""Worker handlers run in a sandbox (`gatehouse worker --isolate`): one fresh sandbox per job.

The same sandbox as a stdio MCP upstream's (`Sandboxes`, `plan`, the supervisor): the worker
runs `job_runner.py` under bubblewrap with the handler's module or package bound read-only, the
job on stdin and the answer on stdout. Nothing of the worker's environment goes in (its API key
above all), nor anything of the host but what `plan` always shows and what the worker's
`--isolate-read`/`--isolate-write` declare. A sandbox per job, not one per worker: what one job
leaves behind (files in /tmp, processes, state in memory) never meets the next one.

`JobSandbox` owns an event loop on a thread of its own, because the egress proxy of `network:
egress` (an asyncio server) must serve the sandbox while the synchronous worker waits for it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from gatehouse.broker.egress import EgressDenied, EgressEntry
from gatehouse.policy.catalog import Sandbox
from gatehouse.sandbox.plan import SandboxError
from gatehouse.sandbox.runtime import CONFIG_ENV, Sandboxes
from gatehouse.sandbox.supervisor import ENV_NAMES

__all__ = ["RUNNER", "JobOutcome", "JobSandbox", "handler_paths"]

log = logging.getLogger("gatehouse.worker.sandbox")

RUNNER = Path(__file__).resolve().parent / "job_runner.py"
_NAME = "worker"  # the name the sandbox's events and egress proxy go by
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """What became of one job in its sandbox: `output` when the handler returned; else `error`
    (the handler raised: its message and `traceback`) or `killed` (the sandbox's event: the
    limit it crossed, or why it could not be set up)."""

    output: Any = None
    error: str | None = None
    traceback: str = ""
    killed: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.killed is None


def handler_paths(spec: str) -> tuple[str, tuple[str, ...]]:
    """(sys.path root, host paths to show read-only) for `package.module:function`, found
    without importing anything of it: importing would run the handler's code in the worker,
    outside the sandbox. A top-level module shows its file; a package its directory (every
    directory of a namespace package). `SandboxError` when it cannot be found."""
    module, _, attr = spec.partition(":")
    top = module.split(".")[0]
    if not top or not attr:
        raise SandboxError(f"handler `{spec}` must look like `package.module:function`")
    try:
        found = importlib.util.find_spec(top)
    except (ImportError, ValueError) as exc:
        raise SandboxError(f"cannot find handler `{spec}`: {exc}") from None
    if found is None:
        raise SandboxError(f"cannot find handler `{spec}`: no module `{top}`")
    if found.submodule_search_locations:
        shown = tuple(str(Path(p).absolute()) for p in found.submodule_search_locations)
    elif found.origin and os.path.isfile(found.origin):
        shown = (str(Path(found.origin).absolute()),)
    else:
        raise SandboxError(f"handler `{spec}`: `{top}` is built into Python and cannot be isolated")
    return str(Path(shown[0]).parent), shown


class JobSandbox:
    def __init__(
        self,
        spec: Sandbox,
        *,
        egress: Sequence[EgressEntry] = (),
        bwrap: str = "bwrap",
        forbidden: Sequence[Path] = (),
    ) -> None:
        self.spec = spec
        self.egress = tuple(egress)
        self.egress_denied = 0
        self.sandboxes = Sandboxes(bwrap=bwrap, forbidden=forbidden, on_egress_denied=self._denied)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="job-sandbox", daemon=True)
        self._thread.start()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def _denied(self, _name: str, exc: EgressDenied) -> None:
        self.egress_denied += 1
        log.warning("sandboxed handler refused egress: %s", exc.message)

    def available(self) -> str | None:
        """None when handlers can be sandboxed here; otherwise why not (fail closed)."""
        return self.sandboxes.available()

    def _command(self, handler: str, check: bool) -> tuple[list[str], Sandbox]:
        root, shown = handler_paths(handler)
        spec = dataclasses.replace(self.spec, read=(*self.spec.read, *shown))
        flags = ["--check"] if check else []
        return [sys.executable, "-I", str(RUNNER), *flags, root, "--", handler], spec

    def run(self, handler: str, job: dict[str, Any] | None = None, *, check: bool = False) -> JobOutcome:
        """Run `handler` on `job` in a fresh sandbox (with `check`, only load it);
        `SandboxError` when the sandbox cannot be set up at all."""
        command, spec = self._command(handler, check)
        launch = self._run(self.sandboxes.launch(_NAME, command, spec, self.egress))
        env = {"PATH": os.environ.get("PATH", os.defpath), **launch.env}
        env[ENV_NAMES] = ",".join(sorted(env))
        env[CONFIG_ENV] = launch.config
        try:
            done = subprocess.run(
                launch.argv,
                input=b"" if check else json.dumps(job).encode(),
                capture_output=True,
                env=env,
                # The supervisor kills at `wall_seconds`; this only guards against the supervisor.
                timeout=spec.wall_seconds + 30,
            )
            stdout, stderr = done.stdout, done.stderr
        except subprocess.TimeoutExpired as exc:
            stdout, stderr = b"", exc.stderr or b""
        if stderr:
            log.info("handler %s said on stderr:\n%s", handler, stderr.decode("utf-8", "replace")[-4000:])
        events = self._run(self.sandboxes.collect(_NAME))
        killed = next((e for e in events if e.get("event") in ("killed", "setup_failed")), None)
        try:
            answer = json.loads(stdout) if stdout else None
        except ValueError:
            answer = None
        if isinstance(answer, dict) and killed is None:
            if "error" in answer:
                return JobOutcome(error=str(answer["error"]), traceback=str(answer.get("traceback", "")))
            if "output" in answer or answer.get("ok"):
                return JobOutcome(output=answer.get("output"))
        if killed is None:
            tail = stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no answer"]
            killed = {"event": "ended", "message": tail[0][:500]}
        return JobOutcome(killed=killed)

    def close(self) -> None:
        self._run(self.sandboxes.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

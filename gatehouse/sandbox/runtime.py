"""Gatehouse's side of the sandboxes: whether they can run here, how to start one, what became
of it.

`Sandboxes.available()` compiles the seccomp filter and runs bubblewrap once, the way every
sandbox runs (`plan` of a trivial Python command, under the filter), and remembers why it
failed, if it did: on such a machine every sandboxed
adapter is unavailable (fails closed) and readiness says why. `launch` turns an adapter's
command and `sandbox:` into what the supervisor executes (`Launch`), starting the adapter's
egress proxy for `network: egress`. `collect` reads what the supervisors wrote about the
sandboxes that ended (killed on a limit, or not set up) and hands each event to `on_event`
(which audits it).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gatehouse.broker.egress import EgressDenied, EgressEntry
from gatehouse.policy.catalog import Sandbox
from gatehouse.sandbox.plan import Plan, SandboxError, plan
from gatehouse.sandbox.proxy import EgressProxy
from gatehouse.sandbox.seccomp import compile_to

__all__ = ["SUPERVISOR", "Launch", "Sandboxes"]

log = logging.getLogger("gatehouse.sandbox")

SUPERVISOR = Path(__file__).resolve().parent / "supervisor.py"
CONFIG_ENV = "GATEHOUSE_SANDBOX"


@dataclass(frozen=True, slots=True)
class Launch:
    """What to execute for a sandboxed command: `argv` (the supervisor, bubblewrap, the
    command), `env` for the command inside, `config` for the supervisor (not passed on)."""

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    config: str = "{}"
    plan: Plan | None = None


class Sandboxes:
    def __init__(
        self,
        *,
        bwrap: str = "bwrap",
        forbidden: Sequence[Path] = (),
        on_event: Callable[[str, dict[str, Any]], Awaitable[None]] | None = None,
        on_egress_denied: Callable[[str, EgressDenied], None] | None = None,
    ) -> None:
        self.bwrap = shutil.which(bwrap) or bwrap
        self.forbidden = tuple(forbidden)
        self.on_event = on_event
        self.on_egress_denied = on_egress_denied
        self._probed = False
        self._unavailable: str | None = None
        self._dir: Path | None = None
        self._proxies: dict[str, EgressProxy] = {}
        self._seccomp: Path | None = None

    def _private_dir(self) -> Path:
        # Short (a unix socket's path is at most 107 bytes) and private (0700).
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="gh-sbx-"))
        return self._dir

    def available(self) -> str | None:
        """None when sandboxes run on this machine; otherwise why not (probed once)."""
        if not self._probed:
            self._unavailable = self._probe()
            self._probed = True
            if self._unavailable:
                log.error(
                    "sandboxes cannot run here; sandboxed adapters will not start: %s", self._unavailable
                )
        return self._unavailable

    def _probe(self) -> str | None:
        if shutil.which(self.bwrap) is None:
            return f"bubblewrap (`{self.bwrap}`) is not installed"
        try:
            # No filter, no sandbox: one that cannot be compiled fails closed like bubblewrap.
            self._seccomp = self._private_dir() / "seccomp.bpf"
            compile_to(self._seccomp)
        except SandboxError as exc:
            self._seccomp = None
            return exc.message
        try:
            fd = os.open(self._seccomp, os.O_RDONLY)
        except OSError as exc:
            return f"the seccomp filter cannot be read: {exc}"
        try:
            p = plan([sys.executable, "-c", "pass"], Sandbox(), forbidden=(), bwrap=self.bwrap,
                     seccomp=self._seccomp, seccomp_fd=fd)  # fmt: skip
            done = subprocess.run(
                p.argv, capture_output=True, text=True, timeout=20, env={"PATH": os.defpath}, pass_fds=(fd,)
            )
        except (OSError, subprocess.TimeoutExpired, SandboxError) as exc:
            return f"bubblewrap cannot run: {exc}"
        finally:
            os.close(fd)
        if done.returncode != 0:
            why = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
            return f"bubblewrap cannot set up a sandbox here: {why[:300]}"
        return None

    def problem(self, command: Sequence[str], spec: Sandbox) -> str | None:
        """Why a sandbox for `command` under `spec` cannot start now, or None."""
        if not spec.enabled:
            return None
        why = self.available()
        if why is not None:
            return why
        try:
            plan(command, spec, forbidden=self.forbidden, bwrap=self.bwrap, proxy_socket=Path("/"))
        except SandboxError as exc:
            return exc.message
        return None

    async def launch(
        self, adapter: str, command: Sequence[str], spec: Sandbox, egress: Sequence[EgressEntry] = ()
    ) -> Launch:
        """How to start `command` sandboxed; `SandboxError` when it cannot be."""
        why = self.available()
        if why is not None:
            raise SandboxError(f"adapter `{adapter}` is sandboxed and {why}")
        if self._seccomp is not None and not self._seccomp.exists():
            # `close` removed the private directory; a sandbox started after it needs its filter.
            self._seccomp = self._private_dir() / "seccomp.bpf"
            compile_to(self._seccomp)
        socket_path = None
        if spec.network == "egress":
            proxy = self._proxies.get(adapter)
            if proxy is None or proxy.entries != tuple(egress):
                if proxy is not None:
                    await proxy.close()
                socket_path = (
                    self._private_dir() / f"{len(self._proxies)}-{os.getpid()}-{abs(hash(adapter))}.sock"
                )
                proxy = EgressProxy(adapter, egress, socket_path, on_denied=self.on_egress_denied)
                await proxy.start()
                self._proxies[adapter] = proxy
            socket_path = proxy.path
        try:
            p = plan(command, spec, forbidden=self.forbidden, bwrap=self.bwrap, proxy_socket=socket_path,
                     seccomp=self._seccomp)  # fmt: skip
        except SandboxError as exc:
            raise SandboxError(f"adapter `{adapter}`: {exc.message}") from None
        events = str(self._private_dir() / f"{adapter}.events")
        return Launch(
            argv=(sys.executable, "-I", str(SUPERVISOR), *p.argv),
            env=p.env,
            config=p.supervisor_config(events),
            plan=p,
        )

    async def collect(self, adapter: str) -> list[dict[str, Any]]:
        """The events the supervisors of `adapter`'s sandboxes wrote since the last call, each
        handed to `on_event`."""
        if self._dir is None:
            return []
        path = self._dir / f"{adapter}.events"
        try:
            # Renamed first: a supervisor appending now writes a new file, read next time.
            taken = path.with_suffix(".taken")
            path.rename(taken)
        except OSError:
            return []
        out = []
        for line in taken.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                out.append(event)
                log.warning("sandbox of %s: %s", adapter, event)
                if self.on_event is not None:
                    await self.on_event(adapter, event)
        taken.unlink(missing_ok=True)
        return out

    async def close(self) -> None:
        for proxy in self._proxies.values():
            await proxy.close()
        self._proxies.clear()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

"""The `gatehouse` command. Each command group lives in `gatehouse/commands/<group>.py`.

Exit codes: 0 success, 1 a check failed or the server refused the request (a policy test case, a
diff, a verification, a 4xx), 2 bad usage or invalid input (a policy that does not load, malformed
JSON), 3 the server cannot be reached or failed (5xx). An error is one line on stderr, never a
traceback.

Shell completion is click's: `eval "$(_GATEHOUSE_COMPLETE=bash_source gatehouse)"` in ~/.bashrc
(`zsh_source` in ~/.zshrc, `fish_source` for fish).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

# (module, attribute): imported lazily so that `gatehouse policy check` does not pay for the
# web stack it does not use.
_COMMANDS = {
    "policy": ("gatehouse.commands.policy", "policy"),
    "serve": ("gatehouse.commands.serve", "serve"),
    "identity": ("gatehouse.commands.identity", "identity"),
    "worker": ("gatehouse.commands.worker", "worker"),
    "keys": ("gatehouse.commands.keys", "keys"),
    "kernel": ("gatehouse.commands.kernel", "kernel"),
    "audit": ("gatehouse.commands.audit", "audit"),
    "incident": ("gatehouse.commands.incident", "incident"),
    "mcp": ("gatehouse.commands.mcp", "mcp"),
    "secret": ("gatehouse.commands.secret", "secret"),
    "redteam": ("gatehouse.commands.redteam", "redteam"),
    "jobs": ("gatehouse.commands.jobs", "jobs"),
    "approvals": ("gatehouse.commands.approvals", "approvals"),
    "quarantine": ("gatehouse.commands.quarantine", "quarantine"),
    "decisions": ("gatehouse.commands.decisions", "decisions"),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return None
        module = importlib.import_module(target[0])
        command: click.Command = getattr(module, target[1])
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            # A request error a command let through: one line and an exit code, not a traceback.
            # httpx is only imported when a command already did (`policy check` never pays).
            httpx = sys.modules.get("httpx")
            client = sys.modules.get("gatehouse.client")
            known = (httpx.HTTPError,) if httpx else ()
            known += (client.ApiError,) if client else ()
            if not known or not isinstance(exc, known):
                raise
            from gatehouse.commands._http import fail

            fail(exc)


@click.group(cls=_LazyGroup)
@click.version_option(package_name="gatehouse")
def main() -> None:
    """Gatehouse: the safety kernel between AI agents and production."""

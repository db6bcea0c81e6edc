"""The `gatehouse` command. Each command group lives in `gatehouse/commands/<group>.py`.

Exit codes: 0 success, 1 a check failed (a policy test case, a diff, a verification),
2 bad usage or invalid input (a policy that does not load, malformed JSON).
"""

from __future__ import annotations

import importlib

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


@click.group(cls=_LazyGroup)
@click.version_option(package_name="gatehouse")
def main() -> None:
    """Gatehouse: the safety kernel between AI agents and production."""

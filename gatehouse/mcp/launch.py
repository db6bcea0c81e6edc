"""`python -m gatehouse.mcp.launch CMD ARGS...`: run an upstream MCP server with exactly the
environment Gatehouse means it to have.

The SDK's stdio transport adds a few variables of the gateway's own environment (LOGNAME,
SHELL, TERM, USER) to the child's; this launcher sits between and executes the server with
only the variables named in `GATEHOUSE_MCP_ENV` (PATH, HOME and the adapter's `env:`), so
nothing of the gateway's environment (keys, tokens) reaches a server that was not given it.
Values, secrets included, travel in the environment, never in argv (readable in /proc).
"""

from __future__ import annotations

import os
import sys

__all__ = ["ENV_NAMES", "main"]

ENV_NAMES = "GATEHOUSE_MCP_ENV"


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit("usage: python -m gatehouse.mcp.launch COMMAND [ARGS...]")
    names = [n for n in os.environ.get(ENV_NAMES, "").split(",") if n]
    env = {n: os.environ[n] for n in names if n in os.environ}
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as exc:
        sys.exit(f"gatehouse: cannot start MCP server `{argv[0]}`: {exc}")


if __name__ == "__main__":
    main(sys.argv[1:])

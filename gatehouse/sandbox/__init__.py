"""Sandboxes for the processes Gatehouse starts for adapters (bubblewrap; see docs/sandbox.md).

`plan` turns a command and an adapter's `sandbox:` into bubblewrap's command line; `Sandboxes`
probes the machine once, starts egress proxies and reads what became of each sandbox;
`supervisor.py` (outside) and `init.py` (inside) are run by path, standard library only.
"""

from gatehouse.sandbox.plan import Plan, SandboxError, plan
from gatehouse.sandbox.runtime import Launch, Sandboxes

__all__ = ["Launch", "Plan", "SandboxError", "Sandboxes", "plan"]

"""The red team: scenarios along the ten attack paths, run against a live deployment through its
public routes and its MCP gateway only (`gatehouse redteam --url URL`; docs/redteam.md).

`run(url, admin_key, target_port=...)` sets up a throw-away range (tenants, identities, a
loopback target and an attacker sink), runs every scenario, takes the range down and answers a
`Run`; `report.as_table|as_json|as_junit` render it.
"""

from __future__ import annotations

from gatehouse.redteam.range import RangeError
from gatehouse.redteam.runner import Finding, Run, run
from gatehouse.redteam.scenario import PATHS, SCENARIOS
from gatehouse.redteam.target import DEFAULT_TARGET_PORT

__all__ = ["DEFAULT_TARGET_PORT", "PATHS", "SCENARIOS", "Finding", "RangeError", "Run", "run"]

"""Running the scenarios against a deployment: set the range up, run each scenario (a scenario
that raises is an `error`, never a pass), take the range down."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from gatehouse.redteam import (  # noqa: F401  # noqa: F401
    deputy,
    destructive,
    egress,
    exfiltration,
    forgery,
    lateral,
    poisoning,
    privilege,
    replay,
    side_channels,
)
from gatehouse.redteam.range import Range
from gatehouse.redteam.scenario import PATHS, SCENARIOS, Outcome, Scenario

__all__ = ["Finding", "Run", "run"]


@dataclass(frozen=True)
class Finding:
    scenario: Scenario
    outcome: Outcome
    seconds: float

    @property
    def status(self) -> str:
        return self.outcome.status


@dataclass(frozen=True)
class Run:
    url: str
    run_id: str
    tenant: str
    findings: tuple[Finding, ...]
    cleanup_problems: tuple[str, ...]
    seconds: float

    @property
    def all_blocked(self) -> bool:
        return all(f.status == "blocked" for f in self.findings)


def _one(s: Scenario, r: Range) -> Finding:
    t0 = time.perf_counter()
    try:
        outcome = s.run(r)
    except Exception as exc:
        where = traceback.extract_tb(exc.__traceback__)[-1]
        outcome = Outcome("error", (), f"{type(exc).__name__}: {exc} ({where.name}:{where.lineno})")
    return Finding(s, outcome, time.perf_counter() - t0)


def run(
    url: str,
    admin_key: str,
    *,
    target_port: int,
    paths: Iterable[str] = (),
    progress: Callable[[Finding], None] | None = None,
    timeout: float = 10.0,
) -> Run:
    """Run every scenario (or those of `paths`) against the deployment at `url`.

    Raises `RangeError` when the range cannot be set up, `httpx.HTTPError` when the deployment
    cannot be reached; the range is taken down whatever happens once it was set up."""
    wanted = set(paths)
    order = list(PATHS)
    chosen = sorted(
        (s for s in SCENARIOS if not wanted or s.path in wanted), key=lambda s: order.index(s.path)
    )
    t0 = time.perf_counter()
    r = Range(url=url.rstrip("/"), admin_key=admin_key, target_port=target_port, timeout=timeout)
    try:
        r.preflight()
        r.setup()
        findings = []
        for s in chosen:
            finding = _one(s, r)
            findings.append(finding)
            if progress is not None:
                progress(finding)
    finally:
        problems = r.cleanup()
    return Run(url=r.url, run_id=r.run_id, tenant=r.tenant, findings=tuple(findings),
               cleanup_problems=tuple(problems), seconds=time.perf_counter() - t0)  # fmt: skip

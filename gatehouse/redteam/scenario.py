"""Scenarios, their outcomes and the evidence they keep.

A scenario is a function `(Range) -> Outcome` registered under one of the ten attack paths. It
attempts one attack as an attacker would, through the deployment's public routes, and says
whether the deployment stopped it, with the evidence: status codes, error codes, the rule that
decided and the decision id. A scenario that cannot run (the deployment answered something it
should never answer, the network failed) is an `error`: it proves nothing, so it counts as not
blocked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = [
    "PATHS",
    "SCENARIOS",
    "Outcome",
    "Scenario",
    "blocked",
    "decision_of",
    "describe",
    "error_code",
    "got_through",
    "inconclusive",
    "scenario",
]

# The ten attack paths, in the order the report prints them.
PATHS: dict[str, str] = {
    "poisoning": "prompt-data poisoning",
    "confused_deputy": "confused deputy through a privileged adapter",
    "exfiltration": "credential exfiltration through outputs",
    "lateral": "lateral movement across tenants and sessions",
    "egress": "egress to an attacker endpoint",
    "destructive": "a compromised model's destructive output",
    "over_privilege": "over-privileged adapters",
    "replay": "replay of earlier jobs, steps and approvals",
    "forgery": "forged approval callbacks and tokens",
    "side_channels": "side channels in errors, timing and traces",
}


STATUSES = ("blocked", "got_through", "inconclusive", "error")


@dataclass(frozen=True)
class Outcome:
    """`blocked`: the deployment stopped the attack. `got_through`: it did not. `inconclusive`:
    the attack could not be staged (a harmless first move was refused), so nothing was shown.
    `error`: the scenario failed to run. Only `blocked` counts as blocked."""

    status: str
    evidence: tuple[str, ...]
    detail: str = ""

    @property
    def blocked(self) -> bool:
        return self.status == "blocked"


def blocked(*evidence: str, detail: str = "") -> Outcome:
    """Stopped; the decisive evidence goes last (the report's table shows the last line)."""
    return Outcome("blocked", tuple(e for e in evidence if e), detail)


def got_through(*evidence: str, detail: str) -> Outcome:
    return Outcome("got_through", tuple(e for e in evidence if e), detail)


def inconclusive(*evidence: str, detail: str) -> Outcome:
    return Outcome("inconclusive", tuple(e for e in evidence if e), detail)


@dataclass(frozen=True)
class Scenario:
    path: str
    id: str
    title: str
    run: Callable[[Any], Outcome] = field(compare=False)


SCENARIOS: list[Scenario] = []


def scenario(
    path: str, name: str, title: str
) -> Callable[[Callable[[Any], Outcome]], Callable[[Any], Outcome]]:
    """Register a scenario of `path` with the id `path.name`."""
    if path not in PATHS:
        raise ValueError(f"unknown attack path `{path}`")

    def register(fn: Callable[[Any], Outcome]) -> Callable[[Any], Outcome]:
        SCENARIOS.append(Scenario(path=path, id=f"{path}.{name}", title=title, run=fn))
        return fn

    return register


def _json(r: httpx.Response) -> dict[str, Any]:
    try:
        body = r.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def describe(r: httpx.Response, label: str = "") -> str:
    """One line of evidence from an answer: status, error code, decision, rule and decision id."""
    body = _json(r)
    parts = [f"{label} " if label else "", str(r.status_code)]
    error = body.get("error") if isinstance(body.get("error"), dict) else None
    if error:
        parts.append(f" {error.get('code')}")
        details = error.get("details") or {}
        decision = details.get("decision") if isinstance(details, dict) else None
        if isinstance(decision, dict):
            body = decision
        elif isinstance(details, dict) and details.get("reason"):
            parts.append(f" ({details['reason']})")
    decision = body.get("decision")
    if isinstance(decision, dict):
        body = decision
        decision = decision.get("decision")
    if isinstance(decision, str):
        parts.append(f" {decision}")
    if body.get("rule_id"):
        parts.append(f" rule={body['rule_id']}")
    if body.get("decision_id"):
        parts.append(f" {body['decision_id']}")
    return "".join(parts).strip()


def decision_of(r: httpx.Response) -> dict[str, Any]:
    """The decision record an answer carries (a step answer, a job answer, or a 403's details)."""
    body = _json(r)
    error = body.get("error")
    if isinstance(error, dict):
        details = error.get("details") or {}
        inner = details.get("decision") if isinstance(details, dict) else None
        return inner if isinstance(inner, dict) else {}
    inner = body.get("decision")
    if isinstance(inner, dict):
        return inner
    return body if "decision_id" in body else {}


def error_code(r: httpx.Response) -> str | None:
    error = _json(r).get("error")
    return str(error.get("code")) if isinstance(error, dict) else None

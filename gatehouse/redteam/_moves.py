"""The moves scenarios combine: open a session, propose a step, report a result, have the broker
call, submit a job, lease it as a worker. Each is one public route; each answers the raw
`httpx.Response` so the scenario reads status and body as an attacker would."""

from __future__ import annotations

from typing import Any

import httpx

from gatehouse.redteam.range import Actor, Range

DENIED_STEP = ("deny",)


def session(r: Range, actor: Actor, task: str) -> str:
    resp = actor.http.post("/api/v1/sessions", json={"task": task})
    if resp.status_code != 201:
        raise RuntimeError(f"opening a session answered {resp.status_code}: {resp.text[:200]}")
    return str(resp.json()["session_id"])


def step(
    r: Range,
    actor: Actor,
    session_id: str,
    adapter: str,
    action: str,
    params: dict[str, Any],
    step_id: str = "",
) -> httpx.Response:
    body = {"session_id": session_id, "step_id": step_id or r.uid("s"), "adapter": adapter, "action": action,
            "params": params}  # fmt: skip
    return actor.http.post("/api/v1/steps/evaluate", json=body)


def result(
    actor: Actor, session_id: str, step_id: str, output: Any, status: str = "succeeded"
) -> httpx.Response:
    body = {"session_id": session_id, "step_id": step_id, "status": status, "output": output}
    return actor.http.post("/api/v1/steps/result", json=body)


def call(
    r: Range,
    actor: Actor,
    adapter: str,
    action: str,
    params: dict[str, Any],
    session_id: str,
    step_id: str = "",
) -> httpx.Response:
    body = {"session_id": session_id, "step_id": step_id or r.uid("s"), "params": params}
    return actor.http.post(f"/api/v1/adapters/{adapter}/{action}", json=body)


def submit(r: Range, actor: Actor, topic: str, prompt: str, **extra: Any) -> httpx.Response:
    resp = actor.http.post("/api/v1/jobs", json={"topic": topic, "prompt": prompt, **extra})
    if resp.status_code == 201:
        r.jobs.append((actor.name, str(resp.json()["job_id"])))
    return resp


def lease(r: Range, job_id: str, tries: int = 20) -> bool:
    """Lease jobs as the range's worker until `job_id` is among them (other queued jobs of the
    red team's topics are leased too and simply left to expire)."""
    worker = r["worker"]
    for _ in range(tries):
        resp = worker.http.post("/api/v1/worker/lease", json={"topics": ["job.redteam.**"], "max_jobs": 10,
                                                               "lease_seconds": 30})  # fmt: skip
        if resp.status_code == 200 and any(j.get("job_id") == job_id for j in resp.json().get("jobs", [])):
            return True
    return False


def decided(resp: httpx.Response) -> str:
    """The decision of a step answer (`allow` / `deny` / `require_approval`), or `refused:<code>`
    for an answer that carries no decision."""
    if resp.status_code == 200:
        body = resp.json()
        return str(body.get("decision") if isinstance(body.get("decision"), str) else body.get("result"))
    try:
        err = resp.json().get("error", {})
    except ValueError:
        return f"refused:{resp.status_code}"
    return f"refused:{err.get('code')}"

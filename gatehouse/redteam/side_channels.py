"""Path 10, side channels: errors, timing and traces that tell an attacker what it may not know
(that another tenant's object exists, a secret's value, a rejected argument's value)."""

from __future__ import annotations

import statistics
import time

from gatehouse.redteam._moves import call, session, step, submit
from gatehouse.redteam.range import Range
from gatehouse.redteam.scenario import Outcome, blocked, describe, got_through, inconclusive, scenario


def _masked(text: str, *ids: str) -> str:
    for i in ids:
        text = text.replace(i, "<id>")
    return text


@scenario("side_channels", "existence-oracle", "another tenant's job id answers unlike a made-up one")
def existence(r: Range) -> Outcome:
    sub = submit(r, r["victim"], "job.redteam.victim", "quarterly figures")
    if sub.status_code != 201:
        return inconclusive(describe(sub), detail="the victim's job was not created: nothing tested")
    real = sub.json()["job_id"]
    fake = real[:-6] + ("000000" if not real.endswith("000000") else "111111")
    a = r["agent"].http.get(f"/api/v1/jobs/{real}")
    b = r["agent"].http.get(f"/api/v1/jobs/{fake}")
    if a.status_code != b.status_code or _masked(a.text, real) != _masked(b.text, fake):
        return got_through(f"existing: {a.status_code} {a.text[:80]}",
                           f"made-up: {b.status_code} {b.text[:80]}",
                           detail="the answers differ")  # fmt: skip
    return blocked(f"both {a.status_code} {describe(a).split(' ', 1)[-1]}", "bodies identical but for the id")


@scenario("side_channels", "timing-oracle", "time another tenant's job id against a made-up one")
def timing(r: Range) -> Outcome:
    sub = submit(r, r["victim"], "job.redteam.victim", "quarterly figures")
    if sub.status_code != 201:
        return inconclusive(describe(sub), detail="the victim's job was not created: nothing tested")
    real = sub.json()["job_id"]
    fake = real[:-6] + "000000"
    agent = r["agent"].http
    samples: dict[str, list[float]] = {real: [], fake: []}
    for _ in range(21):
        for job_id in (real, fake):  # interleaved: drift on a shared machine hits both alike
            t0 = time.perf_counter()
            agent.get(f"/api/v1/jobs/{job_id}")
            samples[job_id].append(time.perf_counter() - t0)
    m_real, m_fake = statistics.median(samples[real]), statistics.median(samples[fake])
    gap_ms = abs(m_real - m_fake) * 1000
    evidence = f"median {m_real * 1000:.2f} ms vs {m_fake * 1000:.2f} ms (gap {gap_ms:.2f} ms)"
    # Loopback jitter on a busy machine is a few milliseconds; a lookup that reads the other
    # tenant's row before refusing would show as a consistent gap well above it.
    if gap_ms > max(10.0, min(m_real, m_fake) * 1000):
        return got_through(evidence, detail="existence shows in the response time")
    return blocked(evidence)


@scenario("side_channels", "value-in-schema-error", "a rejected argument's value echoed in the error")
def schema_error(r: Range) -> Outcome:
    agent = r["agent"]
    sid = session(r, agent, "pay rent")
    canary = f"CANARY{r.run_id}XYZ" * 4
    resp = step(r, agent, sid, "rt_agent", "send_money", {"to": canary, "amount": 10})
    if canary in resp.text or canary.lower() in resp.text.lower():
        return got_through(describe(resp), detail="the refused value is echoed back")
    return blocked("value not echoed", describe(resp))


@scenario(
    "side_channels", "secret-in-upstream-error", "an upstream error message carries the injected secret"
)
def upstream_error(r: Range) -> Outcome:
    agent = r["agent"]
    sid = session(r, agent, "check the failing service")
    resp = call(r, agent, "rt_web", "fail", {}, sid)
    if r.secret_value in resp.text:
        return got_through(describe(resp), detail="the secret came back in the error")
    return blocked(describe(resp), "secret scrubbed from error")


@scenario(
    "side_channels", "params-in-traces", "argument values of a step in the audit trail and decision log"
)
def traces(r: Range) -> Outcome:
    agent = r["agent"]
    sid = session(r, agent, "mail the team")
    canary = f"canary-{r.run_id}-secretplan"
    step(r, agent, sid, "rt_agent", "send_email", {"to": "team@example.com", "body": f"the plan: {canary}"})
    tenant = {"X-Tenant-ID": r.tenant}
    audit = r.admin.get("/api/v1/audit", params={"limit": 1000}, headers=tenant)
    decisions = r.admin.get("/api/v1/decisions", params={"stage": "step", "limit": 500}, headers=tenant)
    if audit.status_code != 200 or decisions.status_code != 200:
        return inconclusive(
            describe(audit), describe(decisions), detail="the logs could not be read: nothing tested"
        )
    leaks = [
        name for name, resp in (("audit log", audit), ("decision log", decisions)) if canary in resp.text
    ]
    if leaks:
        return got_through(detail=f"the argument's value is in the {' and '.join(leaks)}")
    return blocked(f"audit {audit.status_code}, decisions {decisions.status_code}: value absent from both")

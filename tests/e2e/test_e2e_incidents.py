"""Incident containment (kill switches) end to end: a contained tenant gets nothing past the
submit or dispatch gate and its late results are held; a contained identity is refused
everywhere; lifting restores everything; containments survive restarts and are audited."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from harness import ADMIN_KEY, ROOT, Server

CONTAINED_RULE = "incident_containment"


@pytest.fixture(scope="module")
def agents(server: Server) -> dict[str, dict[str, Any]]:
    return {
        "a": server.identity("inc-agent-a", tenant="t-a", topics=["job.**"]),
        "b": server.identity("inc-agent-b", tenant="t-b", topics=["job.**"]),
        "worker": server.identity("inc-worker", tenant="t-a", roles=["worker"], topics=["job.inc.**"]),
    }


def contain(server: Server, **body: str) -> dict[str, Any]:
    with server.admin() as c:
        r = c.post("/api/v1/incidents/contain", json=body)
        assert r.status_code == 201, r.text
        return dict(r.json())


def lift(server: Server, incident_id: str) -> None:
    with server.admin() as c:
        assert c.post(f"/api/v1/incidents/{incident_id}/lift").status_code == 200


def submit(server: Server, key: str, topic: str = "job.demo.echo") -> Any:
    with server.client(key) as c:
        return c.post("/api/v1/jobs", json={"topic": topic, "prompt": "hello"})


def test_a_contained_tenant_gets_nothing_past_the_gates_until_lifted(
    server: Server, agents: dict[str, Any]
) -> None:
    waiting = submit(server, agents["a"]["api_key"], "job.inc.build")  # queued; no worker yet
    assert waiting.status_code == 201
    inc = contain(server, tenant="t-a", reason="agent loop deleting tickets")
    assert inc["kind"] == "tenant" and inc["active"] is True

    denied = submit(server, agents["a"]["api_key"])
    assert denied.status_code == 403
    assert denied.json()["decision"]["rule_id"] == CONTAINED_RULE
    assert "agent loop deleting tickets" in denied.json()["decision"]["reason"]
    assert submit(server, agents["b"]["api_key"]).status_code == 201  # other tenants carry on

    with server.client(agents["worker"]["api_key"]) as w:  # the queued job is denied at dispatch
        got = w.post("/api/v1/worker/lease", json={"topics": ["job.inc.**"], "max_jobs": 5}).json()
        assert got["jobs"] == []
    job_id = waiting.json()["job_id"]
    with server.client(ADMIN_KEY, tenant="t-a") as c:
        assert c.get(f"/api/v1/jobs/{job_id}").json()["status"] == "denied"
        records = c.get(f"/api/v1/jobs/{job_id}/decisions").json()["decisions"]
        assert (records[-1]["stage"], records[-1]["rule_id"]) == ("dispatch", CONTAINED_RULE)

    lift(server, inc["id"])
    assert submit(server, agents["a"]["api_key"]).status_code == 201


def test_a_result_that_arrives_after_containment_is_quarantined(
    server: Server, agents: dict[str, Any]
) -> None:
    job_id = submit(server, agents["a"]["api_key"], "job.inc.deploy").json()["job_id"]
    with server.client(agents["worker"]["api_key"]) as w:
        got = w.post("/api/v1/worker/lease", json={"topics": ["job.inc.**"], "max_jobs": 5}).json()["jobs"]
        assert job_id in [j["job_id"] for j in got]
        inc = contain(server, tenant="t-a", reason="investigating")
        r = w.post(f"/api/v1/worker/jobs/{job_id}/result", json={"status": "succeeded", "output": "done"})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "quarantined"
        assert r.json()["derived"]["output"]["rule_id"] == CONTAINED_RULE
    lift(server, inc["id"])


def test_a_contained_identity_is_refused_everywhere(server: Server, agents: dict[str, Any]) -> None:
    inc = contain(server, identity=agents["b"]["id"], reason="key leaked in a log")
    with server.client(agents["b"]["api_key"]) as c:
        r = c.get("/api/v1/whoami")
        assert r.status_code == 403 and r.json()["error"]["code"] == "identity_contained"
        assert c.post("/api/v1/jobs", json={"topic": "job.demo.echo"}).status_code == 403
    with server.client(agents["a"]["api_key"]) as c:
        assert c.get("/api/v1/whoami").status_code == 200
    lift(server, inc["id"])
    with server.client(agents["b"]["api_key"]) as c:
        assert c.get("/api/v1/whoami").status_code == 200


@pytest.mark.parametrize(
    ("key", "body", "status", "code"),
    [
        (None, {"identity": "self", "reason": "x"}, 422, "self_containment"),
        (None, {"adapter": "bad/name", "reason": "x"}, 422, "invalid_adapter"),
        (None, {"tenant": "t-c", "identity": "x", "reason": "x"}, 422, "invalid_request"),
        (None, {"tenant": "t-c"}, 422, "invalid_reason"),
        (None, {"identity": "idn_missing", "reason": "x"}, 404, "identity_not_found"),
        ("agent", {"tenant": "t-c", "reason": "x"}, 403, "missing_role"),
    ],
)
def test_containment_requests_are_checked(
    server: Server, agents: dict[str, Any], key: str | None, body: dict[str, str], status: int, code: str
) -> None:
    if body.get("identity") == "self":
        with server.admin() as c:
            body = {**body, "identity": c.get("/api/v1/whoami").json()["id"]}
    with server.client(agents["a"]["api_key"] if key == "agent" else ADMIN_KEY) as c:
        r = c.post("/api/v1/incidents/contain", json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code


def test_containing_twice_conflicts_and_lifting_twice_is_not_found(server: Server) -> None:
    server.identity("twice-agent", tenant="t-twice")  # a tenant exists through its identities
    inc = contain(server, tenant="t-twice", reason="x")
    with server.admin() as c:
        again = c.post("/api/v1/incidents/contain", json={"tenant": "t-twice", "reason": "y"})
        assert again.status_code == 409 and again.json()["error"]["code"] == "already_contained"
        assert c.post(f"/api/v1/incidents/{inc['id']}/lift").status_code == 200
        assert c.post(f"/api/v1/incidents/{inc['id']}/lift").status_code == 404
        events = [e["type"] for e in c.get("/api/v1/audit", params={"stream": "system"}).json()["entries"]]
    assert "incident.contained" in events and "incident.lifted" in events


def test_containment_survives_a_restart(server_factory: Any) -> None:
    first = server_factory()
    agent = first.identity("restart-agent", tenant="t-r")
    inc = contain(first, tenant="t-r", reason="held over the restart")
    first.stop()
    second = server_factory(data_dir=first.data_dir)
    assert submit(second, agent["api_key"]).status_code == 403
    with second.admin() as c:
        listed = c.get("/api/v1/incidents").json()["incidents"]
    assert [i["id"] for i in listed] == [inc["id"]]


def test_the_cli_contains_lists_and_lifts(server: Server) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gatehouse", "incident", *args, "--url", server.url, "--key", ADMIN_KEY],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
        )

    server.identity("cli-agent", tenant="t-cli")
    made = cli("contain", "--tenant", "t-cli", "--reason", "drill")
    assert made.returncode == 0, made.stderr
    inc = json.loads(made.stdout)
    listed = cli("list")
    assert inc["id"] in listed.stdout and "t-cli" in listed.stdout
    assert cli("contain", "--tenant", "t-cli", "--identity", "x", "--reason", "r").returncode == 2
    assert cli("lift", inc["id"]).returncode == 0
    assert cli("lift", inc["id"]).returncode == 1


def test_incident_status_flags_a_deny_spike_and_checks_its_input(
    server: Server, agents: dict[str, Any]
) -> None:
    with server.admin() as c:
        before = c.get("/api/v1/incidents/status").json()
    deny = next(s for s in before["signals"] if s["signal"] == "deny")
    for _ in range(5):
        with server.client(agents["a"]["api_key"]) as c:
            c.post("/api/v1/jobs", json={"topic": "job.exec.shell", "prompt": "rm -rf /"})
    with server.admin() as c:
        r = c.get("/api/v1/incidents/status", params={"window": "10m", "baseline": "1h"})
    assert r.status_code == 200, r.text
    after = next(s for s in r.json()["signals"] if s["signal"] == "deny")
    assert after["recent"] >= deny["recent"] + 5
    assert after["flagged"] is True and "deny" in r.json()["flagged"]
    assert {s["signal"] for s in r.json()["signals"]} >= {"forged_approval", "egress_denied", "quarantine"}
    admin_a = server.identity("inc-admin-a", tenant="t-a", roles=["admin"])
    for key, params, status, code in [
        (ADMIN_KEY, {"window": "0m"}, 422, "invalid_window"),
        (ADMIN_KEY, {"window": "soon"}, 422, "invalid_window"),
        (ADMIN_KEY, {"baseline": "99999d"}, 422, "invalid_baseline"),
        (agents["a"]["api_key"], {}, 403, "missing_role"),
        (admin_a["api_key"], {}, 403, "global_admin_required"),  # counters span every tenant
    ]:
        with server.client(key) as c:
            r = c.get("/api/v1/incidents/status", params=params)
        assert r.status_code == status, r.text
        assert r.json()["error"]["code"] == code


def test_incident_status_cli_prints_one_line_per_signal(server: Server) -> None:
    env = {"GATEHOUSE_API_KEY": ADMIN_KEY, "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-m", "gatehouse", "incident", "status", "--url", server.url, "--json"],
        capture_output=True, text=True, cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)}, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert [s["signal"] for s in json.loads(out.stdout)["signals"]] == [
        "deny", "step_deny", "forged_approval", "egress_denied", "quarantine", "fail_open",
    ]  # fmt: skip

"""Containment and roles that hold (probe F8, F9), over HTTP against a real server.

- a contained tenant's own reviewers and approvers release, discard, approve and reject nothing
  (403 `tenant_contained`) until the containment is lifted;
- only identities with the `agent` role (and admins) submit jobs (403 `missing_role`);
- revoking a key cancels its jobs waiting for approval and denies its queued jobs at dispatch
  (rule `identity_revoked`);
- `simulate` never writes into the history of a job the caller is no party to, and `remediate`
  does not take a remediation that only a simulation offered;
- an admin of one tenant administers that tenant alone; global admins (tenant `*`, and the
  bootstrap admin) act in any.
"""

from __future__ import annotations

from typing import Any

import pytest
from harness import ADMIN_KEY, Server

AWS_KEY = "AKIAQ7XK2M4N6P8R0T2V"
PROD = {"labels": {"env": "prod"}, "meta": {"capability": "infra.write"}}


@pytest.fixture(scope="module")
def team(server: Server) -> dict[str, dict[str, Any]]:
    t = "initech"
    return {
        "agent": server.identity("rc-agent", tenant=t, roles=["agent"]),
        "agent2": server.identity("rc-agent2", tenant=t, roles=["agent"]),
        "worker": server.identity("rc-worker", tenant=t, roles=["worker"], topics=["job.rc.**"]),
        "reviewer": server.identity("rc-reviewer", tenant=t, roles=["reviewer"]),
        "approver": server.identity("rc-approver", tenant=t, roles=["approver"]),
    }


def _quarantined(server: Server, team: dict[str, Any]) -> str:
    with server.client(team["agent"]["api_key"]) as c:
        job_id = c.post("/api/v1/jobs", json={"topic": "job.rc.out", "prompt": "x"}).json()["job_id"]
    with server.client(team["worker"]["api_key"]) as w:
        leased = w.post("/api/v1/worker/lease", json={"topics": ["job.rc.**"], "max_jobs": 10}).json()
        assert job_id in [j["job_id"] for j in leased["jobs"]]
        r = w.post(f"/api/v1/worker/jobs/{job_id}/result", json={"status": "succeeded", "output": AWS_KEY})
        assert r.json()["status"] == "quarantined", r.text
    return job_id


def _pending(server: Server, agent: dict[str, Any]) -> str:
    with server.client(agent["api_key"]) as c:
        r = c.post("/api/v1/jobs", json={"topic": "job.deploy.apply", **PROD})
        assert r.json()["status"] == "pending_approval", r.text
        return str(r.json()["job_id"])


def test_a_contained_tenants_reviewers_and_approvers_decide_nothing(
    server: Server, team: dict[str, Any]
) -> None:
    held = [_quarantined(server, team), _quarantined(server, team)]
    pending = [_pending(server, team["agent"]), _pending(server, team["agent"])]
    with server.admin() as admin:
        r = admin.post("/api/v1/incidents/contain", json={"tenant": "initech", "reason": "exfil"})
        assert r.status_code == 201, r.text
        incident = r.json()["id"]
    try:
        with server.client(team["reviewer"]["api_key"]) as rv:
            for action in ("release", "discard"):
                r = rv.post(f"/api/v1/quarantine/{held[0]}/{action}", json={})
                assert r.status_code == 403, r.text
                assert r.json()["error"]["code"] == "tenant_contained"
        with server.client(team["approver"]["api_key"]) as ap:
            for action in ("approve", "reject"):
                r = ap.post(f"/api/v1/approvals/{pending[0]}/{action}", json={})
                assert r.status_code == 403, r.text
                assert r.json()["error"]["code"] == "tenant_contained"
        with server.client(team["agent"]["api_key"]) as ag:
            job = ag.get(f"/api/v1/jobs/{held[0]}").json()
            assert job["status"] == "quarantined" and AWS_KEY not in str(job)
            assert ag.get(f"/api/v1/jobs/{pending[0]}").json()["status"] == "pending_approval"
    finally:
        with server.admin() as admin:
            assert admin.post(f"/api/v1/incidents/{incident}/lift").status_code == 200
    # Lifted: the same people decide again.
    with server.client(team["reviewer"]["api_key"]) as rv:
        assert rv.post(f"/api/v1/quarantine/{held[0]}/release", json={}).status_code == 200
        assert rv.post(f"/api/v1/quarantine/{held[1]}/discard", json={}).status_code == 200
    with server.client(team["approver"]["api_key"]) as ap:
        assert ap.post(f"/api/v1/approvals/{pending[0]}/approve", json={}).status_code == 200
        assert ap.post(f"/api/v1/approvals/{pending[1]}/reject", json={}).status_code == 200


@pytest.mark.parametrize("role", ["worker", "reviewer", "approver"])
def test_only_agents_submit_jobs(server: Server, team: dict[str, Any], role: str) -> None:
    with server.client(team[role]["api_key"]) as c:
        r = c.post("/api/v1/jobs", json={"topic": "job.rc.self", "prompt": "mine"})
        assert r.status_code == 403, r.text
        assert r.json()["error"]["code"] == "missing_role"
        assert c.get("/api/v1/jobs", params={"topic": "job.rc.self"}).json()["jobs"] == []


def test_agents_and_admins_submit(server: Server, team: dict[str, Any]) -> None:
    with server.client(team["agent"]["api_key"]) as c:
        assert c.post("/api/v1/jobs", json={"topic": "job.demo.echo"}).status_code == 201
    with server.admin() as c:  # the operator may submit (README, "Identities and roles")
        assert c.post("/api/v1/jobs", json={"topic": "job.demo.echo"}).status_code == 201


def test_revoking_a_key_withdraws_its_pending_and_queued_jobs(server: Server) -> None:
    agent = server.identity("rc-revoked", tenant="revokes", roles=["agent"])
    worker = server.identity("rc-revokes-worker", tenant="revokes", roles=["worker"], topics=["job.rv.**"])
    approver = server.identity("rc-revokes-approver", tenant="revokes", roles=["approver"])
    pending = _pending(server, agent)
    with server.client(agent["api_key"]) as c:
        queued = c.post("/api/v1/jobs", json={"topic": "job.rv.work"}).json()["job_id"]
    with server.admin() as admin:
        assert admin.delete(f"/api/v1/identities/{agent['id']}").status_code == 200
    with server.client(approver["api_key"]) as ap:
        job = ap.get(f"/api/v1/jobs/{pending}").json()
        assert job["status"] == "cancelled"
        r = ap.post(f"/api/v1/approvals/{pending}/approve", json={})
        assert r.status_code == 409 and r.json()["error"]["code"] == "not_pending"
        waiting = ap.get("/api/v1/approvals", params={"status": "pending"}).json()["approvals"]
        assert pending not in [a["job_id"] for a in waiting]
        history = ap.get(f"/api/v1/jobs/{pending}/decisions").json()["decisions"]
        assert history[-1]["rule_id"] == "identity_revoked"
    with server.client(worker["api_key"]) as w:
        leased = w.post("/api/v1/worker/lease", json={"topics": ["job.rv.**"], "max_jobs": 10}).json()
        assert leased["jobs"] == []
        job = w.get(f"/api/v1/jobs/{queued}").json()
        assert job["status"] == "denied"
        history = w.get(f"/api/v1/jobs/{queued}/decisions").json()["decisions"]
        assert (history[-1]["stage"], history[-1]["rule_id"]) == ("dispatch", "identity_revoked")


def test_simulate_never_writes_into_another_identitys_job(server: Server, team: dict[str, Any]) -> None:
    with server.client(team["agent"]["api_key"]) as owner:
        job_id = owner.post("/api/v1/jobs", json={"topic": "job.other.mine"}).json()["job_id"]
    destructive = {"topic": "job.exec.shell", "prompt": "rm -rf /", "job_id": job_id}
    with server.client(team["agent2"]["api_key"]) as other:
        for body in ({"job_id": job_id}, destructive):
            r = other.post("/api/v1/policy/simulate", json=body)
            assert r.status_code == 403, r.text
            assert r.json()["error"]["code"] == "forbidden"
        # A label that names no job is still just a label.
        r = other.post("/api/v1/policy/simulate", json={**destructive, "job_id": "sim-label-1"})
        assert r.status_code == 200 and r.json()["job_id"] == "sim-label-1"
    with server.client(team["agent"]["api_key"]) as owner:
        stages = [d["stage"] for d in owner.get(f"/api/v1/jobs/{job_id}/decisions").json()["decisions"]]
        assert stages == ["submit", "dispatch"] or stages == ["submit"]
    with server.client(team["approver"]["api_key"]) as ap:  # an approver may re-judge it
        assert ap.post("/api/v1/policy/simulate", json={"job_id": job_id}).status_code == 200


def test_remediate_ignores_a_remediation_offered_only_by_a_simulation(
    server: Server, team: dict[str, Any]
) -> None:
    with server.client(team["agent"]["api_key"]) as c:
        job_id = c.post("/api/v1/jobs", json={"topic": "job.other.plain"}).json()["job_id"]
        sim = c.post(
            "/api/v1/policy/simulate",
            json={"topic": "job.exec.shell", "prompt": "rm -rf /", "job_id": job_id},
        )
        assert sim.status_code == 200
        assert "dry-run" in [r["id"] for r in sim.json()["remediations"]]
        r = c.post(f"/api/v1/jobs/{job_id}/remediate", json={"remediation_id": "dry-run"})
        assert r.status_code == 404, r.text
        assert r.json()["error"]["code"] == "remediation_not_found"


def test_an_admin_of_one_tenant_administers_that_tenant_alone(server: Server) -> None:
    acme_admin = server.identity("acme-admin", tenant="acme", roles=["admin"])
    globex_agent = server.identity("globex-agent", tenant="globex", roles=["agent"])
    with server.client(acme_admin["api_key"]) as a:
        r = a.post("/api/v1/identities", json={"name": "acme-ok", "tenant": "acme", "roles": ["agent"]})
        assert r.status_code == 201, r.text
        for body in (
            {"name": "globex-approver", "tenant": "globex", "roles": ["approver"]},
            {"name": "new-global", "tenant": "*", "roles": ["admin"]},
        ):
            r = a.post("/api/v1/identities", json=body)
            assert r.status_code == 403, r.text
            assert r.json()["error"]["code"] == "tenant_mismatch"
        r = a.get("/api/v1/jobs", headers={"X-Tenant-ID": "globex"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "tenant_mismatch"
        listed = {i["tenant"] for i in a.get("/api/v1/identities").json()["identities"]}
        assert listed == {"acme"}
        whoami = a.get("/api/v1/whoami").json()
        assert whoami["acting_tenant"] == "acme"
        admin_id = next(
            i["id"]
            for i in server.admin().get("/api/v1/identities").json()["identities"]
            if i["name"] == "admin"
        )
        for target in (globex_agent["id"], admin_id):
            r = a.delete(f"/api/v1/identities/{target}")
            assert r.status_code == 404 and r.json()["error"]["code"] == "identity_not_found"
        r = a.post("/api/v1/incidents/contain", json={"tenant": "globex", "reason": "x"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "tenant_mismatch"
        r = a.post("/api/v1/incidents/contain", json={"identity": globex_agent["id"], "reason": "x"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "tenant_mismatch"
        r = a.put("/api/v1/policy", json={"bundle": "name: x\nrules: []\n"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "global_admin_required"
        r = a.get("/api/v1/audit", params={"stream": "tenant:globex"})
        assert r.status_code == 403
    with server.client(globex_agent["api_key"]) as g:  # untouched
        assert g.get("/api/v1/whoami").status_code == 200


def test_global_admins_act_in_any_tenant(server: Server) -> None:
    with server.client(ADMIN_KEY, tenant="globex") as boot:  # the bootstrap admin is global
        assert boot.get("/api/v1/jobs").status_code == 200
        r = boot.post("/api/v1/identities", json={"name": "ops-global", "tenant": "*", "roles": ["admin"]})
        assert r.status_code == 201, r.text
        key = r.json()["api_key"]
        r = boot.post("/api/v1/identities", json={"name": "star-agent", "tenant": "*", "roles": ["agent"]})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_tenant"
    with server.client(key, tenant="globex") as g:
        assert g.get("/api/v1/jobs").status_code == 200
        r = g.post(
            "/api/v1/identities", json={"name": "globex-rv", "tenant": "globex", "roles": ["reviewer"]}
        )
        assert r.status_code == 201, r.text
    with server.client(key) as g:  # no header: the default tenant
        assert g.get("/api/v1/whoami").json()["acting_tenant"] == "default"

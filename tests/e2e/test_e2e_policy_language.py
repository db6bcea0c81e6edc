"""The policy language over HTTP (issue 12): `require` refuses a deploy that leaves out its
capability (422, nothing stored or queued), a bundle without `version` installs, and the server
and `gatehouse policy simulate` judge the same job alike."""

from __future__ import annotations

import json
import subprocess

from harness import SEED, Server, gh

RM_RF = {"topic": "job.exec.shell", "prompt": "rm -rf /"}
PROD_NO_CAPABILITY = {
    "topic": "job.deploy.apply",
    "prompt": "terraform apply -auto-approve",
    "labels": {"env": "prod"},
}


def cli_simulate(job: dict[str, object]) -> subprocess.CompletedProcess[str]:
    return gh("policy", "simulate", SEED, "--job", json.dumps(job), "--json")


def test_a_deploy_without_capability_is_refused_and_nothing_is_queued(server: Server) -> None:
    agent = server.identity("deployer-422", roles=["agent"])
    worker = server.identity("deploy-worker-422", roles=["worker"], topics=["job.deploy.**"])
    with server.client(agent["api_key"]) as c:
        r = c.post("/api/v1/jobs", json=PROD_NO_CAPABILITY)
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error["code"] == "missing_field"
        assert "`meta.capability`" in error["message"]
        assert error["details"]["fields"] == ["meta.capability"]
        assert c.get("/api/v1/jobs", params={"limit": 500}).json()["jobs"] == []
        # Simulate answers the same refusal: it judges the job the submit would store.
        assert c.post("/api/v1/policy/simulate", json=PROD_NO_CAPABILITY).status_code == 422
        # With the capability the same job waits for a person.
        r = c.post("/api/v1/jobs", json={**PROD_NO_CAPABILITY, "meta": {"capability": "infra.write"}})
        assert r.status_code == 201 and r.json()["status"] == "pending_approval", r.text
    with server.client(worker["api_key"]) as w:
        leased = w.post("/api/v1/worker/lease", json={"topics": ["job.deploy.**"], "max_jobs": 10})
        assert leased.status_code == 200 and leased.json()["jobs"] == []
    # The offline tool refuses it too.
    offline = cli_simulate(PROD_NO_CAPABILITY)
    assert offline.returncode == 2 and json.loads(offline.stdout)["error"]["code"] == "missing_field"


def test_the_server_and_policy_simulate_agree_on_a_destructive_prompt(server: Server) -> None:
    with server.admin() as c:
        r = c.post("/api/v1/policy/simulate", json=RM_RF)
        assert r.status_code == 200, r.text
        online = r.json()
        submitted = c.post("/api/v1/jobs", json=RM_RF)
        assert submitted.status_code == 403
    offline = cli_simulate(RM_RF)
    assert offline.returncode == 0, offline.stderr
    out = json.loads(offline.stdout)
    assert (online["result"], online["rule_id"]) == ("deny", "deny-destructive-exec")
    assert (out["decision"], out["rule_id"], out["policy_snapshot"]) == (
        online["result"],
        online["rule_id"],
        online["policy_snapshot"],
    )


def test_a_bundle_without_version_installs(server_factory) -> None:
    s = server_factory(None)
    bundle = "name: no-version\ndefault_decision: allow\nrules:\n  - id: no-shell\n    action: deny\n"
    bundle += "    match: {topics: ['job.exec.*']}\n"
    with s.admin() as c:
        r = c.put("/api/v1/policy", json={"bundle": bundle})
        assert r.status_code == 200, r.text
        assert c.get("/api/v1/policy").json()["name"] == "no-version"
        assert c.post("/api/v1/jobs", json={"topic": "job.exec.shell", "prompt": "ls"}).status_code == 403
        assert c.post("/api/v1/jobs", json={"topic": "job.demo.read", "prompt": "hi"}).status_code == 201

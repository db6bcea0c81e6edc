"""Approvals over HTTP: the happy path and every refusal the dispatch gate must make."""

from __future__ import annotations

import copy
import sqlite3
import time
from pathlib import Path

import httpx
import pytest
from harness import SEED

PROD = {"labels": {"env": "prod"}, "meta": {"capability": "infra.write"}}


def policy_with_ttl(tmp_path: Path, ttl: str = "15m") -> Path:
    p = tmp_path / "approvals.yaml"
    p.write_text(SEED.read_text().replace("approval_ttl: 15m", f"approval_ttl: {ttl}"))
    return p


@pytest.fixture
def setup(server_factory, tmp_path):
    def make(ttl: str = "15m"):
        s = server_factory(policy_with_ttl(tmp_path, ttl))
        agent = s.identity("deployer", roles=["agent"])
        approver = s.identity("alice", roles=["approver"])
        worker = s.identity("deploy-worker", roles=["worker"], topics=["job.deploy.**"])
        return s, agent, approver, worker

    return make


def submit(s, agent, prompt: str = "terraform apply") -> str:
    with s.client(agent["api_key"]) as c:
        r = c.post("/api/v1/jobs", json={"topic": "job.deploy.apply", "prompt": prompt, **PROD})
        assert r.status_code == 201 and r.json()["status"] == "pending_approval", r.text
        return r.json()["job_id"]


def lease(s, worker) -> list[str]:
    with s.client(worker["api_key"]) as w:
        jobs = w.post("/api/v1/worker/lease", json={"topics": ["job.deploy.**"], "max_jobs": 10}).json()[
            "jobs"
        ]
    return [j["job_id"] for j in jobs]


def status(s, job_id: str) -> str:
    return s.admin().get(f"/api/v1/jobs/{job_id}").json()["status"]


def metric(s, name: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in httpx.get(s.metrics_url).text.splitlines()
        if line.startswith(name)
    )


def test_approve_issues_a_signed_token_and_the_job_runs(setup) -> None:
    s, agent, approver, worker = setup()
    job_id = submit(s, agent)
    assert lease(s, worker) == []  # not before a person says yes
    with s.client(approver["api_key"]) as a:
        queue = a.get("/api/v1/approvals", params={"status": "pending"}).json()["approvals"]
        item = next(q for q in queue if q["job_id"] == job_id)
        assert item["rule_id"] == "require-approval-prod-write"
        assert item["requested_by"]["name"] == "deployer"
        assert item["derived"]["labels"]["command_class"] == "write"
        r = a.post(f"/api/v1/approvals/{job_id}/approve", json={"comment": "change CHG-1"})
        assert r.status_code == 200, r.text
        token = r.json()["token"]
        assert set(token["claims"]) == {
            "job_id",
            "job_hash",
            "policy_snapshot",
            "scope",
            "approver",
            "issued_at",
            "expires_at",
            "nonce",
        }
        assert token["claims"]["expires_at"] - token["claims"]["issued_at"] == 900
        assert r.json()["status"] == "queued"
    assert lease(s, worker) == [job_id]
    stages = [
        (d["stage"], d["result"])
        for d in s.admin().get(f"/api/v1/jobs/{job_id}/decisions").json()["decisions"]
    ]
    assert stages == [("submit", "require_approval"), ("approval", "allow"), ("dispatch", "allow")]


def test_refusals_role_self_and_tenant(setup) -> None:
    s, agent, approver, _worker = setup()
    job_id = submit(s, agent)
    self_approver = s.identity("self", roles=["agent", "approver"])
    other_tenant = s.identity("bob", tenant="elsewhere", roles=["approver"])
    with s.client(agent["api_key"]) as c:
        r = c.post(f"/api/v1/approvals/{job_id}/approve", json={})
        assert r.status_code == 403 and r.json()["error"]["code"] == "missing_role"
    with s.admin() as admin:  # admin without the approver role cannot approve either
        assert admin.post(f"/api/v1/approvals/{job_id}/approve", json={}).status_code == 403
    with s.client(self_approver["api_key"]) as c:
        own = c.post("/api/v1/jobs", json={"topic": "job.deploy.apply", **PROD}).json()["job_id"]
        r = c.post(f"/api/v1/approvals/{own}/approve", json={})
        assert r.status_code == 403 and r.json()["error"]["code"] == "self_approval"
    with s.client(other_tenant["api_key"]) as c:
        r = c.post(f"/api/v1/approvals/{job_id}/approve", json={})
        assert r.status_code == 404
        assert job_id not in {a["job_id"] for a in c.get("/api/v1/approvals").json()["approvals"]}
    assert status(s, job_id) == "pending_approval"
    with s.client(approver["api_key"]) as a:
        r = a.post(f"/api/v1/approvals/{job_id}/reject", json={"comment": "not today"})
        assert r.status_code == 200 and r.json()["status"] == "rejected"
        assert a.post(f"/api/v1/approvals/{job_id}/approve", json={}).status_code == 409
    assert status(s, job_id) == "rejected"


def test_edited_job_after_approval_is_never_dispatched(setup) -> None:
    s, agent, approver, worker = setup()
    job_id = submit(s, agent)
    assert (
        s.client(approver["api_key"]).post(f"/api/v1/approvals/{job_id}/approve", json={}).status_code == 200
    )
    db = sqlite3.connect(s.data_dir / "gatehouse.db", timeout=10)
    db.execute("UPDATE jobs SET prompt = 'terraform destroy -auto-approve' WHERE id = ?", (job_id,))
    db.commit()
    db.close()
    assert lease(s, worker) == []
    assert status(s, job_id) == "denied"
    last = s.admin().get(f"/api/v1/jobs/{job_id}/decisions").json()["decisions"][-1]
    assert last["rule_id"] == "approval_job_changed" and last["stage"] == "dispatch"


def test_policy_change_to_deny_after_approval_denies(setup) -> None:
    s, agent, approver, worker = setup()
    job_id = submit(s, agent)
    assert (
        s.client(approver["api_key"]).post(f"/api/v1/approvals/{job_id}/approve", json={}).status_code == 200
    )
    text = SEED.read_text().replace(
        "output_rules:",
        "  - id: freeze\n    decision: deny\n    reason: change freeze\n"
        "    match: {topics: [job.deploy.apply]}\noutput_rules:",
    )
    assert s.admin().put("/api/v1/policy", json={"bundle": text}).status_code == 200
    assert lease(s, worker) == []
    assert status(s, job_id) == "denied"
    last = s.admin().get(f"/api/v1/jobs/{job_id}/decisions").json()["decisions"][-1]
    assert (last["stage"], last["rule_id"]) == ("dispatch", "freeze")


def test_policy_change_to_still_needing_approval_marks_it_stale(setup) -> None:
    s, agent, approver, worker = setup()
    job_id = submit(s, agent)
    assert (
        s.client(approver["api_key"]).post(f"/api/v1/approvals/{job_id}/approve", json={}).status_code == 200
    )
    text = SEED.read_text().replace("production writes need a human approval", "prod writes: ask again")
    assert s.admin().put("/api/v1/policy", json={"bundle": text}).status_code == 200
    assert lease(s, worker) == []
    assert status(s, job_id) == "pending_approval"
    with s.client(approver["api_key"]) as a:
        stale = a.get("/api/v1/approvals", params={"status": "stale"}).json()["approvals"]
        assert job_id in {x["job_id"] for x in stale}
        assert a.post(f"/api/v1/approvals/{job_id}/approve", json={}).status_code == 200
    assert lease(s, worker) == [job_id]
    assert metric(s, 'gatehouse_approval_events_total{event="stale"}') == 1


def test_expired_token_and_expired_request(setup) -> None:
    s, agent, approver, worker = setup(ttl="1s")
    approved = submit(s, agent, "apply a")
    waiting = submit(s, agent, "apply b")
    assert (
        s.client(approver["api_key"]).post(f"/api/v1/approvals/{approved}/approve", json={}).status_code
        == 200
    )
    time.sleep(1.6)
    assert lease(s, worker) == []
    assert status(s, approved) == "expired"
    assert s.wait_status(waiting, {"expired"}, timeout=5)["status"] == "expired"
    r = s.client(approver["api_key"]).post(f"/api/v1/approvals/{waiting}/approve", json={})
    assert r.status_code == 409


def test_replayed_forged_and_misdirected_tokens(setup) -> None:
    s, agent, approver, worker = setup()
    first = submit(s, agent, "apply first")
    second = submit(s, agent, "apply second")
    with s.client(approver["api_key"]) as a:
        token = a.post(f"/api/v1/approvals/{first}/approve", json={}).json()["token"]
        assert lease(s, worker) == [first]
        # replay: the same token again, after it released the job
        r = a.post(f"/api/v1/approvals/{first}/approve", json={"token": token})
        assert r.status_code == 409 and r.json()["error"]["code"] == "approval_token_used"
        # a token signed for another job
        r = a.post(f"/api/v1/approvals/{second}/approve", json={"token": token})
        assert r.status_code == 403 and r.json()["error"]["code"] == "approval_forged"
        # a token not signed by the server
        forged = copy.deepcopy(token)
        forged["claims"]["job_id"] = second
        r = a.post(f"/api/v1/approvals/{second}/approve", json={"token": forged})
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "approval_forged"
    assert status(s, second) == "pending_approval"
    assert metric(s, "gatehouse_approval_forgery_total") == 2
    # the consumed approval cannot release the job a second time: a lease that expires puts it
    # back in the queue, and the dispatch gate asks for a new approval
    db = sqlite3.connect(s.data_dir / "gatehouse.db", timeout=10)
    db.execute("UPDATE jobs SET lease_expires_at = 0 WHERE id = ?", (first,))
    db.commit()
    db.close()
    s.wait_status(first, {"queued"}, timeout=5)
    assert lease(s, worker) == []
    assert status(s, first) == "pending_approval"

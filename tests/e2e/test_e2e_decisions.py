"""The decision log over HTTP: a denied submit leaves no job, only its decision record (with the
request it judged) in the tenant's log; simulate with the runbook's body; remediation from a
decision id; the log's filters, pagination and tenant scope."""

from __future__ import annotations

import base64
import time
from typing import Any

import httpx
from harness import Server

DESTRUCTIVE = {"topic": "job.exec.shell", "prompt": "rm -rf /tmp/x"}
PROD_WRITE = {
    "topic": "job.deploy.apply",
    "prompt": "terraform apply",
    "labels": {"env": "prod"},
    "meta": {"capability": "infra.write"},
}


def deny(c: httpx.Client, **body: Any) -> dict[str, Any]:
    r = c.post("/api/v1/jobs", json={**DESTRUCTIVE, **body})
    assert r.status_code == 403, r.text
    return dict(r.json())


def test_simulate_with_the_runbook_body_answers_the_decision(server: Server) -> None:
    body = {
        "job_id": "sim-prod-write-1",
        "topic": "job.deploy.apply",
        "labels": {"env": "prod"},
        "meta": {"capability": "infra.write"},
    }
    agent = server.identity("sim-agent", tenant="sims")
    with server.client(agent["api_key"]) as c:
        r = c.post("/api/v1/policy/simulate", json=body)
        assert r.status_code == 200, r.text
        record = r.json()
        assert record["stage"] == "simulate"
        assert (record["result"], record["rule_id"]) == ("require_approval", "require-approval-prod-write")
        assert record["job_id"] == "sim-prod-write-1"  # a label: no such job exists
        assert c.get("/api/v1/jobs/sim-prod-write-1").status_code == 404
        assert c.get("/api/v1/jobs").json()["jobs"] == []
        logged = c.get("/api/v1/decisions", params={"stage": "simulate"}).json()["decisions"]
        assert [d["decision_id"] for d in logged] == [record["decision_id"]]
        # A job_id and no topic: the stored job is re-judged, and it must exist in the tenant.
        r = c.post("/api/v1/policy/simulate", json={"job_id": "job_nope"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "job_not_found"
        job_id = c.post("/api/v1/jobs", json={"topic": "job.other.sim"}).json()["job_id"]
        r = c.post("/api/v1/policy/simulate", json={"job_id": job_id})
        assert r.status_code == 200 and r.json()["job_id"] == job_id
        r = c.post("/api/v1/policy/simulate", json={"job_id": job_id, "tenant": "default"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "tenant_mismatch"
    with server.admin() as admin:  # another tenant's job is not found
        r = admin.post("/api/v1/policy/simulate", json={"job_id": job_id})
        assert r.status_code == 404 and r.json()["error"]["code"] == "job_not_found"


def test_denied_submit_leaves_no_job_and_is_in_the_decision_log(server: Server) -> None:
    agent = server.identity("deny-agent", tenant="denials")
    with server.client(agent["api_key"]) as c:
        body = deny(c)
        decision = body["decision"]
        assert body["error"]["details"]["decision"]["decision_id"] == decision["decision_id"]
        assert "job_id" not in body and "status" not in body
        assert c.get("/api/v1/jobs", params={"status": "denied"}).json()["jobs"] == []
        assert c.get("/api/v1/jobs").json()["jobs"] == []
        logged = c.get("/api/v1/decisions", params={"result": "deny"}).json()
        assert [d["decision_id"] for d in logged["decisions"]] == [decision["decision_id"]]
        assert logged["next_cursor"] is None
        one = c.get(f"/api/v1/decisions/{decision['decision_id']}").json()
        assert (one["stage"], one["rule_id"]) == ("submit", "deny-destructive-exec")
        assert one["request"]["prompt"] == DESTRUCTIVE["prompt"]
        assert one["request"]["submitted_by"] == agent["id"]
        assert one["derived"]["labels"]["command_class"] == "destructive"
    with server.admin() as admin:
        # The audit entry of the deny has the request without its prompt (sha256 and preview).
        entries = admin.get("/api/v1/audit", params={"stream": "tenant:denials"}).json()["entries"]
        mine = [e for e in entries if e["data"].get("decision_id") == decision["decision_id"]]
        assert [e["type"] for e in mine] == ["decision"]
        assert "prompt" not in mine[0]["data"]["request"]
        assert len(mine[0]["data"]["request"]["prompt_sha256"]) == 64
        assert not [e for e in entries if e["type"] == "job.submitted"]


def test_another_tenant_cannot_read_or_remediate_the_decision(server: Server) -> None:
    owner = server.identity("owner", tenant="tenant-a")
    other = server.identity("other", tenant="tenant-b")
    with server.client(owner["api_key"]) as a:
        decision_id = deny(a)["decision"]["decision_id"]
    with server.client(other["api_key"]) as b:
        r = b.get(f"/api/v1/decisions/{decision_id}")
        assert r.status_code == 404 and r.json()["error"]["code"] == "decision_not_found"
        assert decision_id not in r.text.replace(f"`{decision_id}`", "")
        assert b.get("/api/v1/decisions").json()["decisions"] == []
        r = b.post(f"/api/v1/decisions/{decision_id}/remediate", json={"remediation_id": "dry-run"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "decision_not_found"
        assert b.get("/api/v1/jobs").json()["jobs"] == []


def test_the_log_pages_newest_first_with_an_opaque_cursor(server: Server) -> None:
    agent = server.identity("pager", tenant="log-pages")
    with server.client(agent["api_key"]) as c:
        ids = [deny(c, prompt=f"rm -rf /tmp/{i}")["decision"]["decision_id"] for i in range(7)]
        c.post("/api/v1/jobs", json={"topic": "job.other.ok"})  # a submit allow and its records
        seen: list[str] = []
        pages = 0
        cursor = None
        while True:
            params: dict[str, Any] = {"result": "deny", "stage": "submit", "limit": 3}
            if cursor:
                params["cursor"] = cursor
            page = c.get("/api/v1/decisions", params=params).json()
            pages += 1
            seen += [d["decision_id"] for d in page["decisions"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert pages == 3
        assert seen == list(reversed(ids))
        by_rule = c.get("/api/v1/decisions", params={"rule_id": "deny-destructive-exec", "limit": 100})
        assert len(by_rule.json()["decisions"]) == 7
        everything = c.get("/api/v1/decisions", params={"limit": 100}).json()["decisions"]
        assert {d["result"] for d in everything} >= {"deny", "allow"}
        assert c.get("/api/v1/decisions", params={"since": "1h"}).json()["decisions"]
        future = "2999-01-01T00:00:00Z"
        assert c.get("/api/v1/decisions", params={"since": future}).json()["decisions"] == []
        for params, code in (
            ({"cursor": "!!"}, "invalid_cursor"),
            ({"cursor": base64.urlsafe_b64encode(b"nope").decode()}, "invalid_cursor"),
            ({"stage": "bogus"}, "invalid_stage"),
            ({"result": "maybe"}, "invalid_result"),
            ({"since": "yesterday"}, "invalid_since"),
        ):
            r = c.get("/api/v1/decisions", params=params)
            assert r.status_code in (400, 422), (params, r.text)
            assert r.json()["error"]["code"] == code, (params, r.text)


def test_remediate_from_a_decision_submits_a_new_job_judged_afresh(server: Server) -> None:
    agent = server.identity("fixer", tenant="remedies")
    with server.client(agent["api_key"]) as c:
        decision = deny(c)["decision"]
        assert [r["id"] for r in decision["remediations"]] == ["dry-run"]
        r = c.post(
            f"/api/v1/decisions/{decision['decision_id']}/remediate", json={"remediation_id": "dry-run"}
        )
        assert r.status_code == 201, r.text
        new = r.json()
        assert new["decision"]["result"] == "allow" and new["remediated_from"] == decision["decision_id"]
        job = c.get(f"/api/v1/jobs/{new['job_id']}").json()
        assert (job["topic"], job["meta"]["capability"]) == ("job.sandbox.shell", "exec.readonly")
        assert job["prompt"] == DESTRUCTIVE["prompt"] and job["submitted_by"] == agent["id"]
        r = c.post(f"/api/v1/decisions/{decision['decision_id']}/remediate", json={"remediation_id": "nope"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "remediation_not_found"
        r = c.post("/api/v1/decisions/dec_nope/remediate", json={"remediation_id": "dry-run"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "decision_not_found"
        # Only submit decisions that denied or asked for approval offer their remediations.
        dispatch = c.get("/api/v1/decisions", params={"stage": "submit", "result": "allow"}).json()
        allowed_id = dispatch["decisions"][0]["decision_id"]
        r = c.post(f"/api/v1/decisions/{allowed_id}/remediate", json={"remediation_id": "dry-run"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "remediation_not_found"
        # A deny whose request carried attachments cannot be rebuilt: their contents are not kept.
        before = len(c.get("/api/v1/jobs").json()["jobs"])
        attached = deny(
            c,
            attachments=[{"name": "x.txt", "content_base64": base64.b64encode(b"hello").decode()}],
        )["decision"]
        r = c.post(
            f"/api/v1/decisions/{attached['decision_id']}/remediate", json={"remediation_id": "dry-run"}
        )
        assert r.status_code == 409 and r.json()["error"]["code"] == "attachments_not_kept"
        assert len(c.get("/api/v1/jobs").json()["jobs"]) == before


def test_remediation_of_a_stored_job_still_works_from_the_job_or_its_decision(server: Server) -> None:
    agent = server.identity("deployer", tenant="deploys", capabilities=["infra.write", "infra.read"])
    with server.client(agent["api_key"]) as c:
        r = c.post("/api/v1/jobs", json=PROD_WRITE)
        assert r.status_code == 201 and r.json()["status"] == "pending_approval", r.text
        job_id, decision_id = r.json()["job_id"], r.json()["decision"]["decision_id"]
        r = c.post(f"/api/v1/jobs/{job_id}/remediate", json={"remediation_id": "plan-instead"})
        assert r.status_code == 201, r.text
        assert r.json()["remediated_from"] == job_id and r.json()["decision"]["result"] == "allow"
        r = c.post(f"/api/v1/decisions/{decision_id}/remediate", json={"remediation_id": "staging-first"})
        assert r.status_code == 201, r.text
        assert r.json()["remediated_from"] == job_id and r.json()["decision"]["result"] == "allow"
        job = c.get(f"/api/v1/jobs/{r.json()['job_id']}").json()
        assert job["labels"]["env"] == "staging"


def test_a_denied_submit_with_an_idempotency_key_is_judged_again(server: Server) -> None:
    """No row is kept for a deny, so there is nothing to replay: the same key and body are
    judged again (a new decision each time), and the key stays free for an allowed job."""
    agent = server.identity("idem", tenant="idem")
    with server.client(agent["api_key"]) as c:
        first = deny(c, idempotency_key="k-1")["decision"]["decision_id"]
        r = c.post("/api/v1/jobs", json=DESTRUCTIVE, headers={"Idempotency-Key": "k-1"})
        assert r.status_code == 403
        assert "Idempotent-Replayed" not in r.headers
        second = r.json()["decision"]["decision_id"]
        assert first != second
        logged = c.get("/api/v1/decisions", params={"result": "deny"}).json()["decisions"]
        assert [d["decision_id"] for d in logged] == [second, first]
        assert logged[0]["request"]["idempotency_key"] == "k-1"
        assert c.get("/api/v1/jobs").json()["jobs"] == []
        ok = c.post("/api/v1/jobs", json={"topic": "job.other.idem", "idempotency_key": "k-1"})
        assert ok.status_code == 201
        again = c.post("/api/v1/jobs", json={"topic": "job.other.idem", "idempotency_key": "k-1"})
        assert again.status_code == 200 and again.json()["job_id"] == ok.json()["job_id"]


def _dispatch_count(server: Server) -> float:
    total = 0.0
    for line in httpx.get(server.metrics_url).text.splitlines():
        if line.startswith("gatehouse_decisions_total{") and 'stage="dispatch"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_one_dispatch_decision_and_one_attempt_per_demo_job(server: Server) -> None:
    before = _dispatch_count(server)
    with server.admin() as c:
        ids = [
            c.post("/api/v1/jobs", json={"topic": "job.demo.read", "prompt": f"n{i}"}).json()["job_id"]
            for i in range(3)
        ]
        ids += [
            c.post("/api/v1/jobs", json={"topic": "job.demo.read", "prompt": "one more"}).json()["job_id"]
        ]
        for job_id in ids:
            job = server.wait_status(job_id, {"succeeded", "failed"})
            assert job["status"] == "succeeded"
            assert job["attempts"] == 1
            stages = [d["stage"] for d in c.get(f"/api/v1/jobs/{job_id}/decisions").json()["decisions"]]
            assert stages == ["submit", "dispatch", "output"]
    time.sleep(0.3)  # a second built-in worker that judged a job too would have counted by now
    assert _dispatch_count(server) - before == len(ids)

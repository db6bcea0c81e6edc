"""The job lifecycle over HTTP against a real `gatehouse serve` on the seed policy."""

from __future__ import annotations

import threading
import time

from harness import ADMIN_KEY, Server

DECISION_FIELDS = {
    "decision_id",
    "timestamp",
    "result",
    "rule_id",
    "reason",
    "stage",
    "policy_snapshot",
    "job_hash",
    "remediations",
    "cached",
    "fail_mode_applied",
}


def test_allowed_demo_job_is_dispatched_and_completed(server: Server) -> None:
    with server.admin() as c:
        r = c.post("/api/v1/jobs", json={"topic": "job.demo.read", "prompt": "status"})
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["status"] == "queued"
        assert body["decision"]["result"] == "allow"
        assert body["decision"]["rule_id"] == "default"
        job = server.wait_status(body["job_id"], {"succeeded"})
        assert job["status"] == "succeeded"
        assert job["result"] == {"echo": "status", "topic": "job.demo.read"}
        decisions = c.get(f"/api/v1/jobs/{body['job_id']}/decisions").json()["decisions"]
        assert [d["stage"] for d in decisions] == ["submit", "dispatch", "output"]
        for d in decisions:
            assert set(d) >= DECISION_FIELDS
            assert d["policy_snapshot"] == body["decision"]["policy_snapshot"]
            assert d["job_hash"] == job["job_hash"]
            assert d["timestamp"].endswith("Z")


def test_destructive_exec_is_denied_at_the_boundary_and_never_queued(server: Server) -> None:
    with server.admin() as c:
        r = c.post(
            "/api/v1/jobs",
            json={
                "topic": "job.exec.shell",
                "prompt": "rm -rf /",
                "labels": {"command_class": "safe"},
            },
        )
        assert r.status_code == 403
        body = r.json()
        assert body["error"]["code"] == "denied"
        decision = body["error"]["details"]["decision"]
        assert decision["result"] == "deny"
        assert decision["rule_id"] == "deny-destructive-exec"
        assert decision["reason"] == "destructive command class blocked"
        assert decision["remediations"][0]["id"] == "dry-run"
        # Nothing was stored: no job id to follow, no row in any status.
        assert "job_id" not in body and "status" not in body
        assert decision["job_id"] is None
        time.sleep(0.3)
        jobs = c.get("/api/v1/jobs", params={"limit": 500}).json()["jobs"]
        assert not [j for j in jobs if j["topic"] == "job.exec.shell"]
        assert c.get("/api/v1/jobs", params={"status": "denied"}).json()["jobs"] == []
        # The decision, with the request it judged, is in the decision log.
        logged = c.get(f"/api/v1/decisions/{decision['decision_id']}").json()
        assert logged["stage"] == "submit" and logged["result"] == "deny"
        assert logged["request"]["topic"] == "job.exec.shell"
        assert logged["request"]["prompt"] == "rm -rf /"
        assert logged["request"]["labels"]["command_class"] == "destructive"  # derived, not declared
        assert logged["request"]["job_hash"] == logged["job_hash"]


def test_prod_write_waits_for_approval_and_is_not_dispatched(server: Server) -> None:
    with server.admin() as c:
        r = c.post(
            "/api/v1/jobs",
            json={
                "topic": "job.demo.deploy",
                "labels": {"env": "prod"},
                "meta": {"capability": "infra.write"},
            },
        )
        assert r.status_code == 201
        assert r.json()["status"] == "pending_approval"
        assert r.json()["decision"]["rule_id"] == "require-approval-prod-write"
        time.sleep(1.0)  # built-in workers serve job.demo.** and must not pick it up
        job = c.get(f"/api/v1/jobs/{r.json()['job_id']}").json()
        assert job["status"] == "pending_approval"


def test_identity_scope_is_checked_before_policy(server: Server) -> None:
    agent = server.identity("scoped-agent", topics=["job.demo.**"], capabilities=["infra.read"])
    with server.client(agent["api_key"]) as c:
        r = c.post("/api/v1/jobs", json={"topic": "job.deploy.apply"})
        assert r.status_code == 403
        assert r.json()["decision"]["rule_id"] == "identity_scope"
        r = c.post("/api/v1/jobs", json={"topic": "job.demo.x", "meta": {"capability": "infra.write"}})
        assert r.status_code == 403
        assert r.json()["decision"]["rule_id"] == "identity_scope"
        assert "capability" in r.json()["decision"]["reason"]
        r = c.post("/api/v1/jobs", json={"topic": "job.demo.x", "meta": {"capability": "infra.read"}})
        assert r.status_code == 201


def test_tenants_never_see_each_other(server: Server) -> None:
    a = server.identity("agent-a", tenant="acme")
    b = server.identity("agent-b", tenant="globex")
    with server.client(a["api_key"]) as ca, server.client(b["api_key"]) as cb:
        job_id = ca.post("/api/v1/jobs", json={"topic": "job.other.thing"}).json()["job_id"]
        for path in (f"/api/v1/jobs/{job_id}", f"/api/v1/jobs/{job_id}/decisions"):
            r = cb.get(path)
            assert r.status_code == 404
            assert r.json()["error"]["code"] == "job_not_found"
            assert "job.other.thing" not in r.text
        assert cb.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 404
        assert job_id not in {j["job_id"] for j in cb.get("/api/v1/jobs").json()["jobs"]}
        assert job_id in {j["job_id"] for j in ca.get("/api/v1/jobs").json()["jobs"]}
        r = cb.post("/api/v1/policy/simulate", json={"job_id": job_id})
        assert r.status_code == 404
        # Claiming another tenant in the header is refused.
        r = cb.get("/api/v1/jobs", headers={"X-Tenant-ID": "acme"})
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "tenant_mismatch"
    # Admins may act on any tenant.
    with server.client(ADMIN_KEY, tenant="acme") as admin:
        assert admin.get(f"/api/v1/jobs/{job_id}").status_code == 200


def test_revoked_key_is_refused_at_once(server: Server) -> None:
    agent = server.identity("short-lived")
    with server.client(agent["api_key"]) as c:
        assert c.get("/api/v1/whoami").status_code == 200
        with server.admin() as admin:
            r = admin.delete(f"/api/v1/identities/{agent['id']}")
            assert r.status_code == 200
            assert r.json()["revoked"] is True
        r = c.post("/api/v1/jobs", json={"topic": "job.demo.read"})
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "invalid_api_key"  # as for a key never issued (F10)


def test_no_request_sent_after_the_revocation_answer_gets_through(server: Server) -> None:
    """Keys are cached for authentication; revoking must still win at once, under load."""
    agent = server.identity("hammered")
    seen: list[tuple[float, int]] = []
    stop = threading.Event()

    def hammer() -> None:
        with server.client(agent["api_key"]) as c:
            while not stop.is_set():
                sent = time.monotonic()
                seen.append((sent, c.get("/api/v1/whoami").status_code))

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    with server.admin() as admin:
        assert admin.delete(f"/api/v1/identities/{agent['id']}").status_code == 200
    revoked_at = time.monotonic()
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join()
    before = [code for sent, code in seen if sent < revoked_at]
    after = [code for sent, code in seen if sent > revoked_at]
    assert 200 in before and after, (len(before), len(after))
    assert set(after) == {401}


def test_identity_key_is_shown_once_and_stored_hashed(server: Server) -> None:
    agent = server.identity("hash-check")
    assert agent["api_key"].startswith("ghk_")
    with server.admin() as c:
        listed = c.get("/api/v1/identities").json()["identities"]
        mine = next(i for i in listed if i["id"] == agent["id"])
        assert "api_key" not in mine
    db = (server.data_dir / "gatehouse.db").read_bytes()
    assert agent["api_key"].encode() not in db


def test_only_admins_manage_identities_and_policy(server: Server) -> None:
    agent = server.identity("plain-agent")
    with server.client(agent["api_key"]) as c:
        r = c.post("/api/v1/identities", json={"name": "x"})
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "missing_role"
        r = c.put("/api/v1/policy", json={"bundle": "version: 1\nrules: []\n"})
        assert r.status_code == 403
        assert c.get("/api/v1/policy").status_code == 200


def test_idempotency_key_returns_the_same_job(server: Server) -> None:
    with server.admin() as c:
        body = {"topic": "job.other.idem", "prompt": "once", "idempotency_key": "k-1"}
        first = c.post("/api/v1/jobs", json=body)
        again = c.post("/api/v1/jobs", json=body)
        assert first.status_code == 201
        assert again.status_code == 200
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.json()["job_id"] == first.json()["job_id"]
        via_header = c.post(
            "/api/v1/jobs",
            json={"topic": "job.other.idem", "prompt": "once"},
            headers={"Idempotency-Key": "k-1"},
        )
        assert via_header.json()["job_id"] == first.json()["job_id"]
        other = c.post("/api/v1/jobs", json={**body, "prompt": "different"})
        assert other.status_code == 409
        assert other.json()["error"]["code"] == "idempotency_key_reused"
        # The key belongs to the identity: another identity gets its own job.
        agent = server.identity("idem-other")
        with server.client(agent["api_key"]) as c2:
            mine = c2.post("/api/v1/jobs", json=body)
            assert mine.status_code == 201
            assert mine.json()["job_id"] != first.json()["job_id"]


def test_cancel_before_running_only(server: Server) -> None:
    with server.admin() as c:
        job_id = c.post("/api/v1/jobs", json={"topic": "job.other.cancel"}).json()["job_id"]
        r = c.post(f"/api/v1/jobs/{job_id}/cancel")
        assert r.status_code == 200
        assert r.json()["status"] == "cancelled"
        r = c.post(f"/api/v1/jobs/{job_id}/cancel")
        assert r.status_code == 409
        assert r.json()["error"]["code"] == "invalid_state"


def test_remediation_creates_a_new_job_judged_afresh(server: Server) -> None:
    with server.admin() as c:
        denied = c.post(
            "/api/v1/jobs",
            json={"topic": "job.exec.shell", "prompt": "rm -rf /tmp/x", "labels": {}},
        )
        assert denied.status_code == 403
        decision_id = denied.json()["decision"]["decision_id"]
        r = c.post(f"/api/v1/decisions/{decision_id}/remediate", json={"remediation_id": "dry-run"})
        assert r.status_code == 201, r.text
        new = r.json()
        assert new["remediated_from"] == decision_id
        assert new["decision"]["result"] == "allow"
        job = c.get(f"/api/v1/jobs/{new['job_id']}").json()
        assert job["topic"] == "job.sandbox.shell"
        assert job["meta"]["capability"] == "exec.readonly"
        assert job["prompt"] == "rm -rf /tmp/x"
        r = c.post(f"/api/v1/decisions/{decision_id}/remediate", json={"remediation_id": "nope"})
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "remediation_not_found"


def test_simulate_and_explain_have_no_side_effect_but_a_record(server: Server) -> None:
    with server.admin() as c:
        before = len(c.get("/api/v1/jobs", params={"limit": 500}).json()["jobs"])
        prod = {
            "topic": "job.deploy.apply",
            "labels": {"env": "prod"},
            "meta": {"capability": "infra.write"},
        }
        sim = c.post("/api/v1/policy/simulate", json=prod)
        assert sim.status_code == 200
        assert sim.json()["result"] == "require_approval"
        assert sim.json()["rule_id"] == "require-approval-prod-write"
        assert sim.json()["stage"] == "simulate"
        exp = c.post("/api/v1/policy/explain", json=prod).json()
        assert exp["winner"] == "require-approval-prod-write"
        traces = {t["rule_id"]: t for t in exp["rules"]}
        assert traces["deny-destructive-exec"]["failed_field"] == "topics"
        assert traces["require-approval-prod-write"]["matched"] is True
        after = len(c.get("/api/v1/jobs", params={"limit": 500}).json()["jobs"])
        assert after == before
        r = c.post("/api/v1/policy/simulate", json={**prod, "tenant": "someone-else"})
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "tenant_mismatch"
        # Simulating a stored job by id.
        job_id = c.post("/api/v1/jobs", json={"topic": "job.other.sim"}).json()["job_id"]
        r = c.post("/api/v1/policy/simulate", json={"job_id": job_id})
        assert r.status_code == 200
        assert r.json()["job_id"] == job_id
        stages = [d["stage"] for d in c.get(f"/api/v1/jobs/{job_id}/decisions").json()["decisions"]]
        assert stages == ["submit", "simulate"]


def test_list_is_paginated_and_filtered(server: Server) -> None:
    agent = server.identity("pager", tenant="pages")
    with server.client(agent["api_key"]) as c:
        ids = [
            c.post("/api/v1/jobs", json={"topic": f"job.page.t{i % 2}"}).json()["job_id"] for i in range(7)
        ]
        seen, cursor = [], None
        while True:
            params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
            page = c.get("/api/v1/jobs", params=params).json()
            seen += [j["job_id"] for j in page["jobs"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert seen == list(reversed(ids))
        t0 = c.get("/api/v1/jobs", params={"topic": "job.page.t0"}).json()["jobs"]
        assert len(t0) == 4
        assert all(
            j["status"] == "queued" for j in c.get("/api/v1/jobs", params={"status": "queued"}).json()["jobs"]
        )
        assert c.get("/api/v1/jobs", params={"status": "bogus"}).status_code == 422
        assert c.get("/api/v1/jobs", params={"cursor": "!!"}).status_code == 422
        assert c.get("/api/v1/jobs", params={"limit": 0}).status_code == 422


def test_health_and_metrics(server: Server) -> None:
    import httpx

    assert httpx.get(server.url + "/healthz").json()["status"] == "ok"
    ready = httpx.get(server.url + "/readyz").json()
    assert ready["status"] == "ready" and len(ready["policy_snapshot"]) == 64
    with server.admin() as c:
        c.post("/api/v1/jobs", json={"topic": "job.exec.shell", "prompt": "rm -rf /"})
    text = httpx.get(server.metrics_url).text
    assert 'gatehouse_decisions_total{decision="deny",rule="deny-destructive-exec",stage="submit"}' in text
    assert "gatehouse_policy_snapshot_info" in text

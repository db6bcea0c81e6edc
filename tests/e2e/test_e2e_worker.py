"""Workers, leases and the dispatch gate, over HTTP."""

from __future__ import annotations

import subprocess
import sys
import time

from harness import ROOT, Server

SEED = (ROOT / "examples" / "policies" / "seed.yaml").read_text()


def test_worker_leases_reports_and_completes(server: Server) -> None:
    worker = server.identity("builder", roles=["worker"], topics=["job.build.**"])
    with server.admin() as admin, server.client(worker["api_key"]) as w:
        job_id = admin.post(
            "/api/v1/jobs",
            json={"topic": "job.build.run", "prompt": "make", "labels": {"team": "core"}},
        ).json()["job_id"]
        leased = w.post("/api/v1/worker/lease", json={"topics": ["job.build.**"], "max_jobs": 5}).json()
        jobs = [j for j in leased["jobs"] if j["job_id"] == job_id]
        assert len(jobs) == 1
        assert jobs[0]["prompt"] == "make" and jobs[0]["labels"] == {
            "team": "core",
            "command_class": "none",
        }
        assert jobs[0]["lease_expires_at"].endswith("Z")
        assert admin.get(f"/api/v1/jobs/{job_id}").json()["status"] == "dispatched"
        # A second lease does not get the same job.
        again = w.post("/api/v1/worker/lease", json={"topics": ["job.build.**"]}).json()["jobs"]
        assert job_id not in {j["job_id"] for j in again}
        r = w.post(f"/api/v1/worker/jobs/{job_id}/heartbeat", json={"lease_seconds": 30})
        assert r.status_code == 200 and r.json()["status"] == "running"
        r = w.post(
            f"/api/v1/worker/jobs/{job_id}/result",
            json={"status": "succeeded", "output": {"ok": 1}},
        )
        assert r.status_code == 200
        job = admin.get(f"/api/v1/jobs/{job_id}").json()
        assert job["status"] == "succeeded" and job["result"] == {"ok": 1}
        # Reporting twice is a conflict, not a second transition.
        r = w.post(f"/api/v1/worker/jobs/{job_id}/result", json={"status": "failed"})
        assert r.status_code == 409


def test_worker_scope_limits_what_it_can_lease(server: Server) -> None:
    worker = server.identity("narrow", roles=["worker"], topics=["job.narrow.a"])
    with server.admin() as admin, server.client(worker["api_key"]) as w:
        b = admin.post("/api/v1/jobs", json={"topic": "job.narrow.b"}).json()["job_id"]
        got = w.post("/api/v1/worker/lease", json={"topics": ["job.narrow.*"], "max_jobs": 10}).json()
        assert b not in {j["job_id"] for j in got["jobs"]}
        assert admin.get(f"/api/v1/jobs/{b}").json()["status"] == "queued"


def test_worker_of_one_tenant_never_leases_another_tenants_jobs(server: Server) -> None:
    agent = server.identity("t1-agent", tenant="t1")
    worker = server.identity("t2-worker", tenant="t2", roles=["worker"])
    with server.client(agent["api_key"]) as a, server.client(worker["api_key"]) as w:
        job_id = a.post("/api/v1/jobs", json={"topic": "job.iso.x"}).json()["job_id"]
        got = w.post("/api/v1/worker/lease", json={"topics": ["job.iso.*"], "max_jobs": 10}).json()
        assert job_id not in {j["job_id"] for j in got["jobs"]}


def test_expired_lease_goes_back_to_the_queue(server: Server) -> None:
    worker = server.identity("slow", roles=["worker"], topics=["job.slow.**"])
    with server.admin() as admin, server.client(worker["api_key"]) as w:
        job_id = admin.post("/api/v1/jobs", json={"topic": "job.slow.x"}).json()["job_id"]
        got = w.post("/api/v1/worker/lease", json={"topics": ["job.slow.**"], "lease_seconds": 1}).json()
        assert [j["job_id"] for j in got["jobs"]] == [job_id]
        job = server.wait_status(job_id, {"queued"}, timeout=5)
        assert job["status"] == "queued" and job["attempts"] == 1
        # The old lease holder can no longer report.
        r = w.post(f"/api/v1/worker/jobs/{job_id}/result", json={"status": "succeeded"})
        assert r.status_code == 409
        got = w.post("/api/v1/worker/lease", json={"topics": ["job.slow.**"]}).json()
        assert [j["job_id"] for j in got["jobs"]] == [job_id]


def test_dispatch_gate_uses_the_current_policy(server_factory) -> None:
    s = server_factory()
    worker = s.identity("gate-worker", roles=["worker"], topics=["job.gate.**"])
    with s.admin() as admin, s.client(worker["api_key"]) as w:
        deny_later = admin.post("/api/v1/jobs", json={"topic": "job.gate.deny"}).json()
        approve_later = admin.post("/api/v1/jobs", json={"topic": "job.gate.approve"}).json()
        assert deny_later["status"] == approve_later["status"] == "queued"
        # The rules must go into `rules:`, which is not the last key of the seed file.
        text = SEED.replace(
            "output_rules:",
            "  - id: deny-gate\n    decision: deny\n    reason: gate closed\n"
            "    match: {topics: [job.gate.deny]}\n"
            "  - id: approve-gate\n    decision: require_approval\n"
            "    match: {topics: [job.gate.approve]}\n"
            "output_rules:",
        )
        r = admin.put("/api/v1/policy", json={"bundle": text})
        assert r.status_code == 200, r.text
        new_snapshot = r.json()["snapshot"]
        got = w.post("/api/v1/worker/lease", json={"topics": ["job.gate.**"], "max_jobs": 10}).json()
        assert got["jobs"] == []
        denied = admin.get(f"/api/v1/jobs/{deny_later['job_id']}").json()
        assert denied["status"] == "denied"
        decisions = admin.get(f"/api/v1/jobs/{deny_later['job_id']}/decisions").json()["decisions"]
        assert [(d["stage"], d["result"]) for d in decisions] == [
            ("submit", "allow"),
            ("dispatch", "deny"),
        ]
        assert decisions[1]["rule_id"] == "deny-gate"
        assert decisions[1]["policy_snapshot"] == new_snapshot != decisions[0]["policy_snapshot"]
        pending = admin.get(f"/api/v1/jobs/{approve_later['job_id']}").json()
        assert pending["status"] == "pending_approval"


def test_installed_policy_persists_across_restart(server_factory, tmp_path) -> None:
    data = tmp_path / "persist"
    s = server_factory(None, data_dir=data)
    with s.admin() as admin:
        assert admin.get("/api/v1/policy").status_code == 404
        # With no bundle the kernel cannot decide: fail closed.
        r = admin.post("/api/v1/jobs", json={"topic": "job.any.thing"})
        assert r.status_code == 403
        assert r.json()["decision"]["rule_id"] == "kernel_unavailable"
        assert r.json()["decision"]["fail_mode_applied"] is True
        snap = admin.put("/api/v1/policy", json={"bundle": SEED}).json()["snapshot"]
    s.stop()
    s2 = server_factory(None, data_dir=data)
    with s2.admin() as admin:
        assert admin.get("/api/v1/policy").json()["snapshot"] == snap
        assert admin.post("/api/v1/jobs", json={"topic": "job.any.thing"}).status_code == 201


def test_external_worker_process_runs_a_handler_per_topic(server: Server, tmp_path) -> None:
    (tmp_path / "myhandlers.py").write_text(
        "def upper(job):\n    return {'upper': job['prompt'].upper()}\n"
        "def boom(job):\n    raise RuntimeError('handler exploded')\n"
    )
    worker = server.identity("ext-worker", roles=["worker"], topics=["job.ext.**"])
    with server.admin() as admin:
        ok = admin.post("/api/v1/jobs", json={"topic": "job.ext.upper", "prompt": "hello"}).json()["job_id"]
        bad = admin.post("/api/v1/jobs", json={"topic": "job.ext.boom"}).json()["job_id"]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gatehouse",
            "worker",
            "--url",
            server.url,
            "--key",
            worker["api_key"],
            "--topics",
            "job.ext.**",
            "--handler",
            "job.ext.upper=myhandlers:upper",
            "--handler",
            "job.ext.boom=myhandlers:boom",
            "--once",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**__import__("os").environ, "PYTHONPATH": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr
    done = server.wait_status(ok, {"succeeded"})
    assert done["result"] == {"upper": "HELLO"}
    failed = server.wait_status(bad, {"failed"})
    # The agent gets a short error with an id (test_e2e_worker_errors.py), not the exception.
    assert failed["status"] == "failed" and failed["result"]["error"]["code"] == "handler_error"
    assert "handler exploded" not in str(failed) and "handler exploded" in proc.stderr


def test_identity_cli(server: Server) -> None:
    base = [sys.executable, "-m", "gatehouse", "identity"]
    env = {**__import__("os").environ, "GATEHOUSE_URL": server.url}
    from harness import ADMIN_KEY

    out = subprocess.run(
        [
            *base,
            "create",
            "cli-agent",
            "--for-tenant",
            "clitenant",
            "--role",
            "agent",
            "--topic",
            "job.cli.**",
            "--key",
            ADMIN_KEY,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    import json

    created = json.loads(out.stdout)
    assert created["tenant"] == "clitenant" and created["api_key"].startswith("ghk_")
    listed = subprocess.run(
        [*base, "list", "--key", ADMIN_KEY], capture_output=True, text=True, env=env, timeout=30
    )
    assert created["id"] in listed.stdout and created["api_key"] not in listed.stdout
    rev = subprocess.run(
        [*base, "revoke", created["id"], "--key", ADMIN_KEY],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert rev.returncode == 0 and json.loads(rev.stdout)["revoked"] is True
    denied = subprocess.run(
        [*base, "list", "--key", created["api_key"]],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert denied.returncode == 1 and "invalid_api_key" in denied.stderr


def test_no_job_is_leased_twice_under_concurrent_workers(server: Server) -> None:
    import concurrent.futures as cf

    worker = server.identity("racer", roles=["worker"], topics=["job.race.**"])
    with server.admin() as admin:
        ids = {
            admin.post("/api/v1/jobs", json={"topic": "job.race.x", "prompt": str(i)}).json()["job_id"]
            for i in range(40)
        }

    def lease_all() -> list[str]:
        got: list[str] = []
        with server.client(worker["api_key"]) as w:
            for _ in range(30):
                jobs = w.post("/api/v1/worker/lease", json={"topics": ["job.race.**"], "max_jobs": 3}).json()[
                    "jobs"
                ]
                got += [j["job_id"] for j in jobs]
                if not jobs:
                    time.sleep(0.01)
        return got

    with cf.ThreadPoolExecutor(4) as pool:
        results = [f.result() for f in [pool.submit(lease_all) for _ in range(4)]]
    all_leased = [j for r in results for j in r if j in ids]
    assert len(all_leased) == len(set(all_leased)) == len(ids)

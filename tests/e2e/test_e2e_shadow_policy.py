"""Shadow bundles over HTTP: a candidate judged beside the live bundle on real traffic, never
enforced; its disagreements listed with the live decision ids and counted; removal; promotion
by a normal install; the same install rules as the live bundle (admin, signatures)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from harness import SEED

CANDIDATE = SEED.read_text(encoding="utf-8").replace(
    "rules:\n",
    "rules:\n"
    "  - id: deny-demo\n"
    "    decision: deny\n"
    '    reason: "no demo jobs on a Friday"\n'
    "    match:\n"
    '      topics: ["job.demo.**"]\n',
    1,
)


def metric(server: Any, name: str) -> float:
    total = 0.0
    for line in httpx.get(server.metrics_url).text.splitlines():
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return total


def diff(c: httpx.Client, want: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The disagreements, once at least `want` are listed (they are written in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        r = c.get("/api/v1/policy/shadow/diff", params={"limit": 50})
        assert r.status_code == 200, r.text
        found: list[dict[str, Any]] = r.json()["disagreements"]
        if len(found) >= want or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_shadow_disagreements_are_recorded_never_enforced_and_removed(server_factory: Any) -> None:
    s = server_factory()
    agent = s.identity("agent-1", tenant="default", roles=["agent"], topics=["job.**"])
    with s.admin() as admin, s.client(agent["api_key"]) as ag:
        r = admin.get("/api/v1/policy/shadow")
        assert r.status_code == 404 and r.json()["error"]["code"] == "no_shadow_policy"
        # An agent may not install one; a bundle that does not load is refused with its line.
        r = ag.put("/api/v1/policy/shadow", json={"bundle": CANDIDATE})
        assert r.status_code == 403
        r = admin.put("/api/v1/policy/shadow", json={"bundle": "rules:\n  - id: x\n    decision: dney\n"})
        assert r.status_code == 422 and "line 3" in r.json()["error"]["message"]
        assert admin.get("/api/v1/policy/shadow").status_code == 404

        r = admin.put("/api/v1/policy/shadow", json={"bundle": CANDIDATE})
        assert r.status_code == 200, r.text
        shadow = r.json()
        assert shadow["enforced"] is False and shadow["rules"] == 4
        live = admin.get("/api/v1/policy").json()
        assert shadow["live_snapshot"] == live["snapshot"] != shadow["snapshot"]
        assert admin.get("/api/v1/policy/shadow").json()["snapshot"] == shadow["snapshot"]

        # The live decision is unaffected: the demo job is allowed, queued and runs.
        r = ag.post("/api/v1/jobs", json={"topic": "job.demo.echo", "prompt": "hello"})
        assert r.status_code == 201, r.text
        job = r.json()
        assert job["decision"]["decision"] == "allow" and job["decision"]["rule_id"] == "default"
        assert s.wait_status(job["job_id"], {"succeeded"}, key=agent["api_key"])["status"] == "succeeded"

        # Both the submit and the dispatch decision disagree, under the ids of the decision log.
        found = diff(admin, 2)
        by_stage = {d["stage"]: d for d in found}
        assert set(by_stage) == {"submit", "dispatch"}
        sub = by_stage["submit"]
        assert sub["decision_id"] == job["decision"]["decision_id"]
        assert sub["subject"] == "job.demo.echo" and sub["tenant"] == "default"
        assert sub["live"] == {"decision": "allow", "rule_id": "default", "policy_snapshot": live["snapshot"]}
        assert sub["shadow"]["decision"] == "deny" and sub["shadow"]["rule_id"] == "deny-demo"
        assert sub["shadow"]["policy_snapshot"] == shadow["snapshot"]
        records = admin.get(f"/api/v1/jobs/{job['job_id']}/decisions").json()["decisions"]
        ids = {rec["stage"]: rec["decision_id"] for rec in records}
        assert ids["dispatch"] == by_stage["dispatch"]["decision_id"]
        assert metric(s, 'gatehouse_shadow_disagreements_total{live="allow",shadow="deny"}') == 2

        # Where the two agree (a destructive command: both deny), nothing is recorded.
        r = ag.post("/api/v1/jobs", json={"topic": "job.exec.shell", "prompt": "rm -rf /"})
        assert r.status_code == 403
        time.sleep(0.3)
        assert len(diff(admin, 3, timeout=0.5)) == 2
        assert admin.get("/api/v1/policy/shadow/diff", params={"limit": 1}).json()["count"] == 1
        assert admin.get("/api/v1/policy/shadow/diff", params={"limit": 0}).status_code == 422
        assert ag.get("/api/v1/policy/shadow/diff").status_code == 403

        # Removal: no shadow, nothing compared any more.
        assert ag.delete("/api/v1/policy/shadow").status_code == 403
        r = admin.delete("/api/v1/policy/shadow")
        assert r.status_code == 200 and r.json() == {"removed": True}
        assert admin.delete("/api/v1/policy/shadow").status_code == 404
        assert admin.get("/api/v1/policy/shadow/diff").status_code == 404
        r = ag.post("/api/v1/jobs", json={"topic": "job.demo.echo", "prompt": "again"})
        assert r.status_code == 201
        time.sleep(0.3)
        assert metric(s, "gatehouse_shadow_disagreements_total") == 2

        # Promotion is a normal install: now the live bundle denies.
        assert admin.put("/api/v1/policy", json={"bundle": CANDIDATE}).status_code == 200
        r = ag.post("/api/v1/jobs", json={"topic": "job.demo.echo", "prompt": "friday"})
        assert r.status_code == 403 and r.json()["decision"]["rule_id"] == "deny-demo"

        audit = admin.get("/api/v1/audit", params={"stream": "system", "limit": 5000}).json()["entries"]
        assert {"policy.shadow_installed", "policy.shadow_removed"} <= {e["type"] for e in audit}


def test_a_shadow_bundle_survives_a_restart(server_factory: Any, tmp_path: Path) -> None:
    data = tmp_path / "data"
    s = server_factory(data_dir=data)
    with s.admin() as admin:
        assert admin.put("/api/v1/policy/shadow", json={"bundle": CANDIDATE}).status_code == 200
    s.stop()
    again = server_factory(data_dir=data)
    with again.admin() as admin:
        assert admin.get("/api/v1/policy/shadow").json()["rules"] == 4


def test_with_trusted_keys_the_shadow_must_be_signed(server_factory: Any, tmp_path: Path) -> None:
    gh = [sys.executable, "-m", "gatehouse"]
    assert (
        subprocess.run([*gh, "keys", "generate", "--out", str(tmp_path / "ops")], timeout=60).returncode == 0
    )
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(CANDIDATE, encoding="utf-8")
    signed = tmp_path / "candidate.signed.json"
    r = subprocess.run(
        [*gh, "policy", "sign", str(candidate), "--key", str(tmp_path / "ops.key"), "--serial", "5",
         "--expires", "30d", "--out", str(signed)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    s = server_factory(SEED, "--trust-key", str(tmp_path / "ops.pub"))
    with s.admin() as admin:
        r = admin.put("/api/v1/policy/shadow", json={"bundle": CANDIDATE})
        assert r.status_code == 422 and r.json()["error"]["code"] == "bundle_unsigned"
        tampered = {"bundle": CANDIDATE.replace("Friday", "Monday"), "signature": _signature(signed)}
        r = admin.put("/api/v1/policy/shadow", json=tampered)
        assert r.status_code == 422 and r.json()["error"]["code"] == "bundle_bad_signature"
        assert admin.get("/api/v1/policy/shadow").status_code == 404
        r = admin.put("/api/v1/policy/shadow", content=signed.read_bytes())
        assert r.status_code == 200, r.text
        assert r.json()["signed"] is True and r.json()["serial"] == 5


def _signature(path: Path) -> dict[str, Any]:
    import json

    data: dict[str, Any] = json.loads(path.read_text())
    return dict(data["signature"])


def test_step_decisions_are_compared_too(server_factory: Any) -> None:
    s = server_factory()
    agent = s.identity("agent-2", tenant="default", roles=["agent"], topics=["job.**"], adapters=["*"])
    candidate = SEED.read_text(encoding="utf-8").replace(
        "rules:\n",
        'rules:\n  - id: deny-web\n    decision: deny\n    match: {targets: ["adapter:web:*"]}\n'
        # What the live bundle never reads (the detectors' findings) is still in the context.
        "    conditions: [{contains: {detected: url}}]\n",
        1,
    )
    with s.admin() as admin, s.client(agent["api_key"]) as ag:
        assert admin.put("/api/v1/policy/shadow", json={"bundle": candidate}).status_code == 200
        r = ag.post("/api/v1/sessions", json={"task": "read a page"})
        assert r.status_code == 201, r.text
        session_id = r.json()["session_id"]
        r = ag.post(
            "/api/v1/steps/evaluate",
            json={"session_id": session_id, "step_id": "s1", "adapter": "web", "action": "read",
                  "params": {"url": "https://example.com"}},
        )  # fmt: skip
        assert r.status_code == 200, r.text
        step = r.json()
        assert step["decision"] == "allow"  # the live bundle's answer, enforced
        (found,) = diff(admin, 1)
        assert found["stage"] == "step" and found["decision_id"] == step["decision_id"]
        assert found["subject"] == "adapter:web:read"
        assert (found["live"]["decision"], found["shadow"]["rule_id"]) == ("allow", "deny-web")


def test_cli_shadow_set_show_diff_clear(server_factory: Any, tmp_path: Path) -> None:
    from harness import ADMIN_KEY, gh

    s = server_factory()
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(CANDIDATE, encoding="utf-8")
    auth = ("--url", s.url, "--key", ADMIN_KEY)
    r = gh("policy", "shadow", "show", *auth)
    assert r.returncode == 1 and "no_shadow_policy" in r.stderr
    r = gh("policy", "shadow", "set", candidate, *auth)
    assert r.returncode == 0, r.stderr
    assert "installed beside live" in r.stdout and "never enforced" in r.stdout
    r = gh("policy", "shadow", "show", *auth)
    assert r.returncode == 0 and "(4 rules)" in r.stdout
    with s.admin() as admin:
        job = admin.post("/api/v1/jobs", json={"topic": "job.demo.echo", "prompt": "hi"}).json()
        diff(admin, 1)
    r = gh("policy", "shadow", "diff", *auth, "--limit", "10")
    assert r.returncode == 0, r.stderr
    assert (
        f"{job['decision']['decision_id']}  submit    job.demo.echo  allow (default) -> deny (deny-demo)"
        in r.stdout
    )
    r = gh("policy", "shadow", "diff", *auth, "--json")
    assert r.returncode == 0 and '"disagreements"' in r.stdout
    r = gh("policy", "shadow", "clear", *auth)
    assert r.returncode == 0 and "removed" in r.stdout
    r = gh("policy", "shadow", "clear", *auth)
    assert r.returncode == 1 and "no_shadow_policy" in r.stderr

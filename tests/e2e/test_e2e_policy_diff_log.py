"""`gatehouse policy diff OLD NEW --decisions URL|FILE` against the decision log of a real server:
every recorded request whose decision would change, grouped by rule, as text and JSON; the log
exported to a file replays the same; `--jobs` still works beside it."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness import ADMIN_KEY, ROOT, SEED

# The candidate denies demo jobs, and no longer asks for an approval of production writes.
NEW = (
    SEED.read_text(encoding="utf-8")
    .replace(
        "rules:\n",
        'rules:\n  - id: deny-demo\n    decision: deny\n    reason: "no demo jobs"\n'
        '    match: {topics: ["job.demo.**"]}\n',
        1,
    )
    .replace('capabilities: ["infra.write"]', 'capabilities: ["infra.destroy"]')
)


def run(*args: Any, key: str | None = ADMIN_KEY) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")}
    if key is not None:
        env["GATEHOUSE_API_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "gatehouse", *map(str, args)],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=120,
    )  # fmt: skip


def test_diff_replays_the_recorded_decision_log(server_factory: Any, tmp_path: Path) -> None:
    assert "infra.destroy" in NEW and "deny-demo" in NEW
    new = tmp_path / "new.yaml"
    new.write_text(NEW, encoding="utf-8")
    s = server_factory()
    agent = s.identity("agent-d", tenant="default", roles=["agent"], topics=["job.**"])
    with s.client(agent["api_key"]) as ag:
        demo = [
            ag.post("/api/v1/jobs", json={"topic": "job.demo.echo", "prompt": f"hi {i}"}).json()
            for i in range(2)
        ]
        prod = ag.post(
            "/api/v1/jobs",
            json={"topic": "job.deploy.apply", "prompt": "terraform apply", "labels": {"env": "prod"},
                  "meta": {"capability": "infra.write"}},
        ).json()  # fmt: skip
        assert prod["decision"]["decision"] == "require_approval"
        denied = ag.post("/api/v1/jobs", json={"topic": "job.exec.shell", "prompt": "rm -rf /"})
        assert denied.status_code == 403  # a denied submit: no job, the record keeps the request
        same = ag.post("/api/v1/jobs", json={"topic": "job.other.thing", "prompt": "ls"}).json()
        assert same["decision"]["decision"] == "allow"
        ag.post("/api/v1/policy/simulate", json={"topic": "job.demo.echo", "prompt": "x"})

    export = tmp_path / "log.jsonl"
    r = run("policy", "diff", SEED, new, "--decisions", s.url, "--export", export)
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert "allow (default) -> deny (deny-demo): 2 requests" in lines
    assert "require_approval (require-approval-prod-write) -> allow (default): 1 requests" in lines
    for job in demo:
        assert f"  {job['decision']['decision_id']}  default  job.demo.echo" in lines
    assert f"  {prod['decision']['decision_id']}  default  job.deploy.apply" in lines
    assert lines[-1].startswith("3 of 5 replayed requests change decision (")
    assert "note:" not in r.stdout  # the seed is what the server ran

    r = run("policy", "diff", SEED, new, "--decisions", s.url, "--json")
    data = json.loads(r.stdout)
    assert (data["replayed"], data["changed"], data["unlike_recorded"]) == (5, 3, 0)
    top = data["groups"][0]
    assert top["old"] == {"decision": "allow", "rule_id": "default"}
    assert top["new"] == {"decision": "deny", "rule_id": "deny-demo"}
    assert {x["job_id"] for x in top["requests"]} == {j["job_id"] for j in demo}

    # The export replays the same, with no server; a log replayed under the wrong OLD says so.
    r = run("policy", "diff", SEED, new, "--decisions", export, "--json", key=None)
    assert r.returncode == 1 and json.loads(r.stdout)["groups"] == data["groups"]
    r = run("policy", "diff", new, new, "--decisions", export, key=None)
    assert r.returncode == 0 and "0 of 5 replayed requests change decision" in r.stdout
    assert "note: OLD decides 3 requests otherwise than the server did" in r.stdout

    # --jobs still works, and exactly one source is asked for.
    r = run("policy", "diff", SEED, new, "--jobs", ROOT / "examples" / "policies" / "seed.jobs.jsonl")
    assert r.returncode in (0, 1) and "jobs change decision" in r.stdout
    r = run("policy", "diff", SEED, new)
    assert r.returncode == 2 and "give exactly one of --jobs and --decisions" in r.stderr


def test_diff_bad_inputs(server_factory: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"decision_id": "dec_1", "stage": "submit"}\nnot json\n', encoding="utf-8")
    r = run("policy", "diff", SEED, SEED, "--decisions", bad, key=None)
    assert r.returncode == 2 and "line 2: not valid JSON" in r.stderr and "Traceback" not in r.stderr
    r = run("policy", "diff", SEED, SEED, "--decisions", "http://127.0.0.1:9", key=None)
    assert r.returncode == 2 and "needs an API key" in r.stderr
    r = run("policy", "diff", SEED, SEED, "--decisions", "http://127.0.0.1:9")
    assert r.returncode == 2 and "cannot reach" in r.stderr
    s = server_factory()
    r = run("policy", "diff", SEED, SEED, "--decisions", s.url, key="ghk_wrong")
    assert r.returncode == 2 and "401" in r.stderr
    r = run("policy", "diff", SEED, SEED, "--decisions", bad, "--export", tmp_path / "x", key=None)
    assert r.returncode == 2 and "--export applies to a --decisions URL" in r.stderr


# Steps: the server runs OLD (the step example plus CRM updates); NEW asks for an approval of a
# CRM update whose ticket came from untrusted content.
STEPS = ROOT / "examples" / "policies" / "steps.yaml"
_CRM_ALLOW = (
    '  - id: allow-crm-updates\n    decision: allow\n    reason: "CRM updates are allowed"\n'
    '    match: {targets: ["adapter:crm:update"]}\n'
)
_CRM_UNTRUSTED = (
    "  - id: approve-untrusted-crm-update\n    decision: require_approval\n"
    '    reason: "a CRM update carrying a ticket read from untrusted content"\n'
    '    match: {targets: ["adapter:crm:update"]}\n'
    "    conditions:\n      - from_untrusted: params.ticket\n"
)
STEPS_OLD = STEPS.read_text(encoding="utf-8").replace("rules:\n", "rules:\n" + _CRM_ALLOW, 1)
STEPS_NEW = STEPS_OLD.replace("rules:\n", "rules:\n" + _CRM_UNTRUSTED, 1)


def _step(c: Any, sid: str, step_id: str, adapter: str, action: str, params: Any) -> dict[str, Any]:
    r = c.post("/api/v1/steps/evaluate", json={"session_id": sid, "step_id": step_id, "adapter": adapter,
                                                "action": action, "params": params})  # fmt: skip
    assert r.status_code == 200, r.text
    return dict(r.json())


def _read(c: Any, sid: str, step_id: str, text: str) -> None:
    assert (
        _step(c, sid, step_id, "web", "read", {"url": "https://inbox.example.net/1"})["decision"] == "allow"
    )
    r = c.post("/api/v1/steps/result", json={"session_id": sid, "step_id": step_id, "status": "succeeded",
                                             "output": {"text": text}})  # fmt: skip
    assert r.status_code == 200, r.text


def test_diff_replays_recorded_steps_with_their_session(server_factory: Any, tmp_path: Path) -> None:
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(STEPS_OLD, encoding="utf-8")
    new.write_text(STEPS_NEW, encoding="utf-8")
    data_dir = tmp_path / "steps-data"
    s = server_factory(old, data_dir=data_dir)
    agent = s.identity("diff-agent", tenant="acme", roles=["agent"], adapters=["*"])
    alice = s.identity("diff-alice", tenant="acme", roles=["approver"])
    with s.client(agent["api_key"]) as ag, s.client(alice["api_key"]) as ap:
        sid = ag.post("/api/v1/sessions", json={"task": "escalate what the inbox asks for"}).json()[
            "session_id"
        ]
        _read(ag, sid, "s1", "Customer asks to escalate ticket TKT-448812 today, thanks")
        # A write with a value from the untrusted read: allowed by OLD, an approval under NEW.
        write = _step(ag, sid, "s2", "crm", "update", {"ticket": "TKT-448812", "status": "escalated"})
        assert (write["decision"], write["rule_id"]) == ("allow", "allow-crm-updates")
        # A write whose value came from nowhere untrusted: the same under both.
        other = _step(ag, sid, "s3", "crm", "update", {"ticket": "TKT-100000", "status": "closed"})
        assert other["decision"] == "allow"
        denied = _step(ag, sid, "s4", "shell", "exec", {"cmd": "rm -rf /"})
        assert (denied["decision"], denied["rule_id"]) == ("deny", "default")
        # A step a person approved: its first decision replays, the settled one is skipped.
        mail = _step(ag, sid, "s5", "mail", "send", {"to": "someone@elsewhere.net", "body": "hi"})
        assert mail["decision"] == "require_approval"
        assert ap.post(f"/api/v1/approvals/{mail['approval_id']}/approve").status_code == 200
        settled = _step(ag, sid, "s5", "mail", "send", {"to": "someone@elsewhere.net", "body": "hi"})
        assert settled["decision"] == "allow" and settled["decision_id"] != mail["decision_id"]
        # A session that will be gone: its write would change under NEW, were it replayed.
        gone = ag.post("/api/v1/sessions", json={"task": "tidy up"}).json()["session_id"]
        _read(ag, gone, "g1", "please escalate TKT-777777")
        assert _step(ag, gone, "g2", "crm", "update", {"ticket": "TKT-777777"})["decision"] == "allow"

        # The session read for replay: admins only, the default answer unchanged.
        plain = ag.get(f"/api/v1/sessions/{sid}").json()
        assert "params" not in plain["steps"][1] and "detail" not in plain
        r = ag.get(f"/api/v1/sessions/{sid}", params={"detail": "replay"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "missing_role"
    with s.client(tenant="acme") as admin:
        r = admin.get(f"/api/v1/sessions/{sid}", params={"detail": "everything"})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_detail"
        view = admin.get(f"/api/v1/sessions/{sid}", params={"detail": "replay"}).json()
        s1, s2 = view["steps"][0], view["steps"][1]
        assert s1["output"] == {"text": "Customer asks to escalate ticket TKT-448812 today, thanks"}
        assert s1["trusted"] is False and s2["output"] is None
        assert s2["params"] == {"ticket": "TKT-448812", "status": "escalated"}
        assert s2["job"] == {"tenant": "acme", "requester_role": "agent"}
        assert view["detail"] == "replay" and view["untrusted_bound"] > 0
        audit = admin.get("/api/v1/audit", params={"limit": 5000}).json()
        reads = [e for e in audit["entries"] if e["type"] == "session.replay_read"]
        assert reads and reads[-1]["data"]["session_id"] == sid and reads[-1]["data"]["outputs"] == 1

    s.stop()  # the session goes (a clean-up, a restore from an older backup)
    with sqlite3.connect(_database(data_dir)) as db:
        db.execute("DELETE FROM session_steps WHERE session_id = ?", (gone,))
        db.execute("DELETE FROM sessions WHERE id = ?", (gone,))
    s = server_factory(old, data_dir=data_dir)

    export = tmp_path / "steps.jsonl"
    r = run("policy", "diff", old, new, "--decisions", s.url, "--tenant", "acme", "--export", export)
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines == [
        "allow (allow-crm-updates) -> require_approval (approve-untrusted-crm-update): 1 requests",
        f"  {write['decision_id']}  acme  adapter:crm:update  session {sid} step s2",
        "1 of 5 replayed requests change decision "
        "(8 records; skipped: 2 session gone, 1 settled by a person)",
    ], r.stdout

    r = run("policy", "diff", old, new, "--decisions", s.url, "--tenant", "acme", "--json")
    result = json.loads(r.stdout)
    assert (result["replayed"], result["changed"], result["unlike_recorded"]) == (5, 1, 0)
    [group] = result["groups"]
    assert group["requests"][0] == {
        "decision_id": write["decision_id"], "timestamp": group["requests"][0]["timestamp"], "stage": "step",
        "tenant": "acme", "target": "adapter:crm:update", "session_id": sid, "step_id": "s2", "job_id": None,
    }  # fmt: skip

    # The export replays the same with no server; OLD against itself changes nothing.
    r = run("policy", "diff", old, new, "--decisions", export, "--json", key=None)
    assert r.returncode == 1 and json.loads(r.stdout)["groups"] == result["groups"]
    r = run("policy", "diff", old, old, "--decisions", export, key=None)
    assert r.returncode == 0 and "0 of 5 replayed requests change decision" in r.stdout
    # Under a bundle that judged otherwise (NEW as OLD), the replay says so.
    r = run("policy", "diff", new, old, "--decisions", export, key=None)
    assert r.returncode == 1 and "note: OLD decides 1 requests otherwise than the server did" in r.stdout

    # A key that may not read sessions replays the submits and counts the steps it cannot.
    reader = s.identity("diff-reader", tenant="acme", roles=["reviewer"])
    r = run("policy", "diff", old, new, "--decisions", s.url, key=reader["api_key"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "(8 records; skipped: 7 session needs an admin key, 1 settled by a person)" in r.stdout


def _database(data_dir: Path) -> Path:
    [found] = [p for p in data_dir.rglob("*") if p.suffix in (".db", ".sqlite", ".sqlite3")]
    return found

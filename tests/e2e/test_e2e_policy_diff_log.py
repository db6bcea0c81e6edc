"""`gatehouse policy diff OLD NEW --decisions URL|FILE` against the decision log of a real server:
every recorded request whose decision would change, grouped by rule, as text and JSON; the log
exported to a file replays the same; `--jobs` still works beside it."""

from __future__ import annotations

import json
import os
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

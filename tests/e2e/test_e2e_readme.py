"""The README's quickstart, run with bash exactly as printed.

The commands come from the README itself; the only substitutions are the two the README
documents: `ghk_...` becomes the `api_key` the identity answer printed and `<job_id>` the
`job_id` of the allowed submit. `examples/quickstart.sh` runs the same commands with assertions.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import ROOT
from shellbook import Shell, commands, first_json, sh_block

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="the quickstart uses curl")


def _find(value: Any, key: str) -> list[Any]:
    """Every value under `key` anywhere in a JSON document."""
    found: list[Any] = []
    if isinstance(value, dict):
        for k, v in value.items():
            if k == key:
                found.append(v)
            found += _find(v, key)
    elif isinstance(value, list):
        for v in value:
            found += _find(v, key)
    return found


@pytest.fixture
def shell(tmp_path: Path) -> Iterator[Shell]:
    # A fresh folder as the user's working directory, with the repository's examples in it.
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    sh = Shell(tmp_path)
    yield sh
    sh.close()


def run_block(shell: Shell, block: list[str], submit_fragment: str) -> dict[str, str]:
    """Run each command; substitute the documented placeholders; what each printed."""
    outputs: dict[str, str] = {}
    key = job_id = None
    for command in block:
        if command.startswith("AGENT=ghk_..."):
            assert key, "the identity was not created before its key is used"
            command = command.replace("ghk_...", key, 1)
        if "<job_id>" in command:
            assert job_id, "no job was submitted before its decisions are read"
            command = command.replace("<job_id>", job_id)
        rc, out = shell.run(command)
        assert rc == 0, f"`{command}` exited {rc}: {out}\n{shell.log.read_text()}"
        outputs[command] = out
        if "/api/v1/identities" in command:
            key = first_json(out)["api_key"]
        elif submit_fragment in command:
            answer = first_json(out)
            assert answer["decision"]["result"] == "allow", out
            job_id = answer["job_id"]
    return outputs


def test_readme_quickstart_runs_as_printed(shell: Shell) -> None:
    block = commands(sh_block(ROOT / "README.md", "Quickstart"))
    by_path = run_block(shell, block, '"topic":"job.demo.read"')
    job_id = first_json(next(out for cmd, out in by_path.items() if "job.demo.read" in cmd))["job_id"]

    def output_of(fragment: str) -> Any:
        return first_json(next(out for cmd, out in by_path.items() if fragment in cmd))

    sim = output_of("/policy/simulate")
    assert (sim["result"], sim["rule_id"]) == ("require_approval", "require-approval-prod-write")
    deny = output_of("rm -rf /")
    assert "deny-destructive-exec" in _find(deny, "rule_id"), deny
    decisions = output_of(f"/jobs/{job_id}/decisions")["decisions"]
    assert decisions[0]["stage"] == "submit" and decisions[0]["result"] == "allow"
    log = output_of("decisions?result=deny")["decisions"]
    assert [d["rule_id"] for d in log] == ["deny-destructive-exec"], log
    metrics = next(out for cmd, out in by_path.items() if "9090/metrics" in cmd)
    assert re.search(
        r'^gatehouse_decisions_total\{decision="deny",rule="deny-destructive-exec",stage="submit"\} 1\.0$',
        metrics,
        re.M,
    ), metrics

    # What the README promises about the deny: nothing stored, nothing queued.
    _, out = shell.run('curl -s -H "X-API-Key: $AGENT" "localhost:8081/api/v1/jobs?limit=500"')
    topics = [j["topic"] for j in first_json(out)["jobs"]]
    assert "job.exec.shell" not in topics and "job.demo.read" in topics, out


def test_quickstart_script_runs_the_same_commands() -> None:
    """`examples/quickstart.sh` is the README's block with checks, driven with the agent key."""
    script = (ROOT / "examples" / "quickstart.sh").read_text()
    for command in commands(sh_block(ROOT / "README.md", "Quickstart")):
        if "curl -s" not in command or "readyz" in command:
            continue
        # The same request, with the same key variable, and no header the README does not send.
        request = re.sub(r"\s*\\\n\s*", " ", command.split("#")[0]).strip()
        request = request.replace("localhost:8081", "$URL").replace("localhost:9090/metrics", "$METRICS")
        request = request.replace("<job_id>", "$JOB")
        assert request in script, f"quickstart.sh does not run `{request}`"
    assert "Content-Type:" not in script

    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")}
    env["PYTHON"] = sys.executable
    out = subprocess.run(
        ["bash", str(ROOT / "examples" / "quickstart.sh")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "quickstart: all steps passed" in out.stdout


def test_runbook_runs_as_printed(shell: Shell) -> None:
    """docs/runbook.md: simulate a job id that does not exist, three jobs, decisions, metrics."""
    block = commands(sh_block(ROOT / "docs" / "runbook.md", "Runbook"))
    out = run_block(shell, block, "read the service status")

    def answer(fragment: str) -> Any:
        return first_json(next(o for cmd, o in out.items() if fragment in cmd))

    sim = answer("sim-prod-write-1")
    assert (sim["stage"], sim["result"], sim["rule_id"], sim["job_id"]) == (
        "simulate",
        "require_approval",
        "require-approval-prod-write",
        "sim-prod-write-1",
    )
    deny = answer("rm -rf /var/lib/app")
    assert deny["error"]["code"] == "denied"
    assert deny["error"]["details"]["decision"]["rule_id"] == "deny-destructive-exec"
    waiting = answer("terraform apply")
    assert (waiting["status"], waiting["decision"]["result"]) == ("pending_approval", "require_approval")
    log = answer("decisions?limit=20")["decisions"]
    seen = {(d["stage"], d["result"]) for d in log}
    assert {("simulate", "require_approval"), ("submit", "allow"), ("submit", "deny")} <= seen, log
    assert ("submit", "require_approval") in seen
    assert deny["error"]["details"]["decision"]["decision_id"] in {d["decision_id"] for d in log}
    pending = answer("status=pending_approval")
    assert [j["job_id"] for j in pending["jobs"]] == [waiting["job_id"]], pending
    metrics = next(o for cmd, o in out.items() if "9090/metrics" in cmd)
    assert (
        'gatehouse_decisions_total{decision="deny",rule="deny-destructive-exec",stage="submit"} 1.0'
        in metrics
    )


def test_readme_policy_block_loads() -> None:
    """The README's policy example is a bundle that loads, with the rules it describes."""
    from gatehouse.policy import load

    text = ROOT.joinpath("README.md").read_text()
    block = re.search(r"## The policy language in one screen\s+```yaml\n(.*?)```", text, re.S)
    assert block
    policy = load(block.group(1))
    assert [r.id for r in policy.rules][-1] == "no-deletes-on-prod-db"
    decision = policy.decide({"topic": "job.deploy.apply", "labels": {"env": "prod"}})
    assert decision.decision == "require_approval"

"""The incident drill of `docs/incident-drill.md`, run with bash exactly as printed: detect
(`incident status` flags the deny spike the block provokes), contain (identity and tenant),
preserve (audit export, verified offline), triage, remediate (revoke), restore (lift).

The only substitutions are the values the doc says to copy: the agent's `api_key` and `id`, and
the containment ids, in the order `incident status` printed them.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import ROOT
from shellbook import Shell, commands, first_json, sh_block

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="the drill uses curl")

DOC = ROOT / "docs" / "incident-drill.md"


@pytest.fixture
def shell(tmp_path: Path) -> Iterator[Shell]:
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    sh = Shell(tmp_path)
    yield sh
    sh.close()


def signal_line(out: str, name: str) -> list[str]:
    line = next(x for x in out.splitlines() if x.split()[:1] == [name])
    return line.split()


def test_the_drill_runs_as_printed(shell: Shell) -> None:
    block = commands(sh_block(DOC, "Incident drill"))
    key = agent_id = None
    incident_ids: list[str] = []
    out_of: dict[str, str] = {}
    statuses: list[str] = []
    for command in block:
        if command.startswith("AGENT=ghk_..."):
            assert key, "the identity was not created before its key is used"
            command = command.replace("ghk_...", key, 1)
        if command.startswith("AGENT_ID=idn_..."):
            assert agent_id
            command = command.replace("idn_...", agent_id, 1)
        if command.startswith("gatehouse incident lift inc_..."):
            command = command.replace("inc_...", incident_ids.pop(0), 1)
        rc, out = shell.run(command)
        assert rc == 0, f"`{command}` exited {rc}: {out}\n{shell.log.read_text()}"
        out_of[command] = out
        if "/api/v1/identities" in command:
            answer = first_json(out)
            key, agent_id = answer["api_key"], answer["id"]
        if command == "gatehouse incident status":
            statuses.append(out)
            incident_ids = re.findall(r"^\s+(inc_\S+)", out, re.M)

    def output_of(fragment: str) -> str:
        return next(out for cmd, out in out_of.items() if fragment in cmd)

    # The attack: every destructive submit was denied.
    assert output_of("for i in").split() == ["403"] * 6
    # 1. detect: the deny spike is flagged, nothing else is, and nothing is contained yet.
    detect, after_revoke = statuses
    assert "containments in force: none" in detect
    assert signal_line(detect, "deny")[1] == "6" and signal_line(detect, "deny")[-1] == "ALERT", detect
    assert "flagged: deny" in detect
    for quiet in ("step_deny", "forged_approval", "egress_denied", "quarantine", "fail_open"):
        assert signal_line(detect, quiet)[-1] == "ok", detect
    series = 'gatehouse_decisions_total{decision="deny",rule="deny-destructive-exec",stage="submit"} 6.0'
    assert series in output_of("9090/metrics").splitlines()
    denies = first_json(output_of("result=deny"))["decisions"]
    assert {d["rule_id"] for d in denies} == {"deny-destructive-exec"} and len(denies) == 5
    # 2. contain: identity then tenant; the leaked key is refused on every route.
    assert first_json(output_of("--identity $AGENT_ID"))["kind"] == "identity"
    assert first_json(output_of("--tenant drill"))["kind"] == "tenant"
    refused = first_json(output_of('"topic":"job.demo.read"'))
    assert refused["error"]["code"] == "identity_contained", refused
    # 3. preserve: the export has entries and checkpoints, and verifies offline.
    assert re.search(r"exported \d+ entries and [1-9]\d* checkpoints", output_of("audit export"))
    assert "ok" in output_of("audit verify")
    # 4. triage: the tenant's decisions and audit entries hold everything the leaked key did.
    triage = first_json(output_of("decisions?since=1h"))["decisions"]
    assert sum(d["rule_id"] == "deny-destructive-exec" for d in triage) == 6
    entries = first_json(output_of("/api/v1/audit?limit=100"))["entries"]
    assert sum(e["type"] == "decision" and e["actor"] == agent_id for e in entries) >= 6, entries
    # 5. remediate: the key is revoked; both containments still in force.
    assert first_json(output_of("identity revoke"))["revoked"] is True
    assert "containments in force: 2" in after_revoke
    # 6. restore: each lifted, none left.
    lifted = [first_json(out) for cmd, out in out_of.items() if cmd.startswith("gatehouse incident lift")]
    assert [x["active"] for x in lifted] == [False, False]
    assert list(out_of.values())[-1].strip() == "no containments in force"

"""`gatehouse redteam` against fresh real servers (this is the red team CI runs):

- with examples/policies/hardened.yaml every scenario of the ten paths is blocked, the command
  exits 0, its JSON and JUnit reports are well formed, and the range it made is gone afterwards
  (identities revoked, secret deleted, no containment left);
- the negative control: against a permissive bundle (allow everything, no output rules, the same
  catalog) the policy-dependent scenarios get through and the command exits 1, which proves the
  scenarios can fail; the checks built into the server (tenant isolation, egress on the wire,
  forged credentials) still hold;
- bad invocations each answer one line and a documented exit code, never a traceback.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import ADMIN_KEY, ROOT, Server, free_port

HARDENED = ROOT / "examples" / "policies" / "hardened.yaml"
PATHS = ("poisoning", "confused_deputy", "exfiltration", "lateral", "egress", "destructive", "over_privilege",
         "replay", "forgery", "side_channels")  # fmt: skip


def redteam(*args: object, key: str | None = ADMIN_KEY) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")}
    if key is not None:
        env["GATEHOUSE_API_KEY"] = key
    return subprocess.run([sys.executable, "-m", "gatehouse", "redteam", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)  # fmt: skip


def bundle_on(port: int, *, permissive: bool = False) -> str:
    """hardened.yaml with the target on `port` (a free one: tests may run side by side)."""
    text = HARDENED.read_text().replace("18999", str(port))
    if not permissive:
        return text
    doc = yaml.safe_load(text)
    doc.update(name="permissive", default_decision="allow", rules=[], output_rules=[])
    return yaml.safe_dump(doc, sort_keys=False)


def serve(root: Path, bundle: str) -> Server:
    root.mkdir(parents=True, exist_ok=True)
    (root / "bundle.yaml").write_text(bundle)
    return Server(data_dir=root / "data", policy=root / "bundle.yaml").start()


@pytest.fixture(scope="module")
def hardened(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, int]]:
    port = free_port()
    s = serve(tmp_path_factory.mktemp("rt-hardened"), bundle_on(port))
    yield s, port
    s.stop()


@pytest.fixture(scope="module")
def hardened_run(hardened: tuple[Server, int], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    s, port = hardened
    out = tmp_path_factory.mktemp("rt-reports")
    proc = redteam("--url", s.url, "--target-port", port, "--json", out / "r.json", "--junit", out / "r.xml")
    return {"proc": proc, "json": json.loads((out / "r.json").read_text()), "junit": ET.parse(out / "r.xml")}


def test_every_scenario_is_blocked_under_the_hardened_bundle(hardened_run: dict[str, Any]) -> None:
    proc, report = hardened_run["proc"], hardened_run["json"]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    not_blocked = [f for f in report["findings"] if f["status"] != "blocked"]
    assert not_blocked == [] and report["all_blocked"] is True
    assert [p["path"] for p in report["paths"]] == list(PATHS)
    for p in report["paths"]:
        assert p["scenarios"] >= 3 and p["blocked"] == p["scenarios"], p
    for f in report["findings"]:
        assert f["evidence"], f  # every verdict carries what stopped it
    # What stopped them: decision ids and the rules of the bundle, the server's own checks.
    evidence = "\n".join(e for f in report["findings"] for e in f["evidence"])
    for proof in ("rule=deny-untrusted-payee", "rule=deny-destructive-tools", "rule=identity_scope",
                  "rule=param_schema", "egress_denied (blocked_address)", "self_approval", "step_conflict",
                  "output rule=quarantine-credentials", "dec_"):  # fmt: skip
        assert proof in evidence, proof


def test_the_table_has_one_row_per_path(hardened_run: dict[str, Any]) -> None:
    out = hardened_run["proc"].stdout
    lines = out.splitlines()
    assert [c.strip() for c in lines[0].split("|")] == ["path", "scenarios", "blocked", "evidence"]
    rows = [line for line in lines[2:] if line.count("|") == 3]
    assert len(rows) == 10
    for row in rows:
        _, n, ok, evidence = (c.strip() for c in row.split("|"))
        assert ok == f"{n}/{n}" and evidence
    assert "dec_" in out and "scenarios blocked against" in out and "Traceback" not in out


def test_the_junit_report_is_well_formed(hardened_run: dict[str, Any]) -> None:
    root = hardened_run["junit"].getroot()
    report = hardened_run["json"]
    assert root.tag == "testsuites"
    assert int(root.get("tests")) == report["scenarios"] >= 30
    assert root.get("failures") == "0" and root.get("errors") == "0"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == list(PATHS)
    cases = root.iter("testcase")
    assert sorted(c.get("name") for c in cases) == sorted(f["id"] for f in report["findings"])
    assert not list(root.iter("failure")) and not list(root.iter("error"))


def test_the_range_is_taken_down(hardened: tuple[Server, int], hardened_run: dict[str, Any]) -> None:
    s, port = hardened
    report = hardened_run["json"]
    assert report["cleanup_problems"] == []
    tenant = report["tenant"]
    with s.admin() as c:
        mine = [i for i in c.get("/api/v1/identities").json()["identities"] if i["tenant"].startswith(tenant)]
        assert len(mine) >= 7 and all(i["revoked"] for i in mine)
        assert c.get("/api/v1/secrets", headers={"X-Tenant-ID": tenant}).json()["secrets"] == []
        assert c.get("/api/v1/incidents").json()["incidents"] == []
        assert c.get("/api/v1/audit/verify").json().get("ok", True) is not False
    with socket.socket() as probe:  # the target stopped with the run: nothing listens there now
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT of its last exchanges
        probe.bind(("127.0.0.1", port))


@pytest.fixture(scope="module")
def permissive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, int]]:
    port = free_port()
    s = serve(tmp_path_factory.mktemp("rt-permissive"), bundle_on(port, permissive=True))
    yield s, port
    s.stop()


def test_negative_control_a_permissive_bundle_lets_attacks_through(
    permissive: tuple[Server, int], tmp_path: Path
) -> None:
    s, port = permissive
    proc = redteam(
        "--url", s.url, "--target-port", port, "--json", tmp_path / "r.json", "--junit", tmp_path / "r.xml"
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    status = {f["id"]: f["status"] for f in report["findings"]}
    assert report["all_blocked"] is False
    # What the policy had to stop now gets through ...
    through = ("poisoning.payee-from-page", "poisoning.injected-job-prompt",
               "exfiltration.key-in-tool-output", "exfiltration.key-in-job-result",
               "exfiltration.mcp-config-leak", "egress.attacker-url-argument",
               "destructive.rm-rf-job", "destructive.drop-table", "destructive.mcp-drop-database",
               "replay.approval-for-another-step")  # fmt: skip
    for scenario in through:
        assert status[scenario] == "got_through", scenario
    # ... while what the server enforces whatever the policy still holds.
    for scenario in ("lateral.other-tenants-job", "lateral.tenant-header", "egress.redirect-to-attacker",
                     "egress.dns-rebinding", "exfiltration.echoed-credential", "forgery.forged-credential",
                     "replay.step-id-reused", "side_channels.existence-oracle"):  # fmt: skip
        assert status[scenario] == "blocked", scenario
    assert "FAIL destructive.rm-rf-job" in proc.stdout
    junit = ET.parse(tmp_path / "r.xml").getroot()
    assert int(junit.get("failures")) == sum(v == "got_through" for v in status.values()) >= 10


def test_an_unreachable_server_is_one_line(tmp_path: Path) -> None:
    proc = redteam("--url", f"http://127.0.0.1:{free_port()}", "--target-port", free_port())
    assert proc.returncode == 3
    assert proc.stderr.startswith("error: cannot reach") and len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr + proc.stdout


def test_a_wrong_or_missing_key_is_one_line(hardened: tuple[Server, int]) -> None:
    s, port = hardened
    wrong = redteam("--url", s.url, "--target-port", port, key="ghk_not_a_key_at_all_000000")
    assert (
        wrong.returncode == 2 and "admin key was refused" in wrong.stderr and "Traceback" not in wrong.stderr
    )
    agent = s.identity("rt-test-agent", roles=["agent"])["api_key"]
    not_admin = redteam("--url", s.url, "--target-port", port, key=agent)
    assert not_admin.returncode == 2 and "not an admin key" in not_admin.stderr
    missing = redteam("--url", s.url, key=None)
    assert (
        missing.returncode == 2
        and "GATEHOUSE_API_KEY" in missing.stderr
        and "Traceback" not in missing.stderr
    )


def test_a_busy_target_port_is_one_line(hardened: tuple[Server, int]) -> None:
    s, _ = hardened
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        proc = redteam("--url", s.url, "--target-port", taken.getsockname()[1])
    assert proc.returncode == 2 and "cannot listen on 127.0.0.1:" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_a_bundle_without_the_range_is_refused(server_factory: Any) -> None:
    seed = server_factory()
    proc = redteam("--url", seed.url, "--target-port", free_port())
    assert proc.returncode == 2 and "hardened.yaml" in proc.stderr and "Traceback" not in proc.stderr
    with seed.admin() as c:  # nothing was created before the refusal
        assert not [
            i for i in c.get("/api/v1/identities").json()["identities"] if i["name"].startswith("rt-")
        ]

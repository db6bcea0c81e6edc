"""`gatehouse policy lint`, driven as a user would: a real process, its output and exit code."""

from __future__ import annotations

import json
from pathlib import Path

from harness import gh

ROOT = Path(__file__).resolve().parents[2]

DEAD = """\
version: 1
rules:
  - id: deny-deploys
    decision: deny
    match: {topics: ["job.deploy.**"]}
  - id: allow-apply
    decision: allow
    match: {topics: ["job.deploy.apply"]}
"""

WARN_ONLY = """\
version: 1
rules:
  - id: approve
    decision: require_approval
    match: {topics: ["job.x"]}
"""


def test_lint_errors_exit_1_with_rule_ids_and_lines(tmp_path: Path) -> None:
    path = tmp_path / "dead.yaml"
    path.write_text(DEAD, encoding="utf-8")
    r = gh("policy", "lint", str(path))
    assert r.returncode == 1, r.stdout + r.stderr
    assert (
        f"{path}: error: shadowed: `allow-apply` (line 6), `deny-deploys` (line 3): never decides" in r.stdout
    )
    assert r.stdout.strip().endswith("2 rules: 1 errors, 0 warnings")


def test_lint_json(tmp_path: Path) -> None:
    path = tmp_path / "dead.yaml"
    path.write_text(DEAD, encoding="utf-8")
    r = gh("policy", "lint", str(path), "--json")
    assert r.returncode == 1
    data = json.loads(r.stdout)
    assert (data["errors"], data["warnings"], data["rules"]) == (1, 0, 2)
    (f,) = data["findings"]
    assert (f["kind"], f["severity"], f["rules"], f["lines"]) == (
        "shadowed",
        "error",
        ["allow-apply", "deny-deploys"],
        [6, 3],
    )


def test_lint_warnings_only_exit_0_and_the_approval_default_is_an_option(tmp_path: Path) -> None:
    path = tmp_path / "warn.yaml"
    path.write_text(WARN_ONLY, encoding="utf-8")
    r = gh("policy", "lint", str(path))
    assert r.returncode == 0 and "0 errors, 0 warnings" in r.stdout
    r = gh("policy", "lint", str(path), "--approval-default", "1d")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "warning: approval_ttl: `approve` (line 3)" in r.stdout
    r = gh("policy", "lint", str(path), "--approval-default", "soon")
    assert r.returncode == 2 and "error: --approval-default: bad duration `soon`" in r.stderr


def test_lint_bad_bundle_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("version: 1\nrules:\n  - id: x\n    decision: dney\n", encoding="utf-8")
    r = gh("policy", "lint", str(path))
    assert r.returncode == 2 and "line 4" in r.stderr and "Traceback" not in r.stderr


def test_shipped_bundles_lint_with_exit_0() -> None:
    for path in sorted((ROOT / "examples" / "policies").glob("*.yaml")):
        if path.name.endswith(".tests.yaml"):
            continue
        r = gh("policy", "lint", str(path))
        assert r.returncode == 0, r.stdout + r.stderr

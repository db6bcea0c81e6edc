"""`gatehouse policy` judges a job as the server does, and checks a bundle as the server's install
does (issue 12): the same ingress and `require` check offline, signed envelopes, `--canonical`,
classifier patterns that do not compile. Driven as a user would, through a real process."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from harness import gh

from gatehouse.policy import load

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "examples" / "policies" / "seed.yaml"
RM_RF = {"topic": "job.exec.shell", "prompt": "rm -rf /"}
PROD_NO_CAPABILITY = {
    "topic": "job.deploy.apply",
    "prompt": "terraform apply -auto-approve",
    "labels": {"env": "prod"},
}


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# -- the prompt is classified offline as on the server ---------------------------------------------


def test_simulate_denies_a_destructive_prompt() -> None:
    r = gh("policy", "simulate", SEED, "--job", json.dumps(RM_RF), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["decision"], out["rule_id"]) == ("deny", "deny-destructive-exec")


def test_explain_shows_the_derived_label_matching() -> None:
    r = gh("policy", "explain", SEED, "--job", json.dumps(RM_RF), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["winner"] == "deny-destructive-exec"
    assert out["rules"][0]["matched"] is True


def test_a_declared_command_class_is_dropped_offline_too() -> None:
    job = {"topic": "job.exec.shell", "prompt": "ls -la", "labels": {"command_class": "destructive"}}
    r = gh("policy", "simulate", SEED, "--job", json.dumps(job), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["decision"] == "allow"


def test_policy_test_runs_the_classifier(tmp_path: Path) -> None:
    fixtures = write(
        tmp_path,
        "f.yaml",
        "cases:\n  - name: rm\n    job: {topic: job.exec.shell, prompt: 'rm -rf /'}\n"
        "    expect: {decision: deny, rule_id: deny-destructive-exec}\n",
    )
    r = gh("policy", "test", SEED, fixtures)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines() == ["PASS rm", "1 passed, 0 failed"]


def test_the_bundle_classifier_runs_offline(tmp_path: Path) -> None:
    bundle = write(
        tmp_path,
        "sql.yaml",
        """\
default_decision: allow
classifiers:
  - name: drop-table
    regex: '(?i)\\bdrop\\s+table\\b'
    label: command_class
    value: destructive
rules:
  - id: no-destructive-sql
    decision: deny
    match: {labels: {command_class: destructive}}
""",
    )
    job = {"topic": "job.repo.read", "prompt": "then DROP TABLE users;"}
    r = gh("policy", "simulate", bundle, "--job", json.dumps(job), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["rule_id"] == "no-destructive-sql"


# -- require: a field left out is refused, never allowed ----------------------------------------------


def test_simulate_refuses_a_deploy_without_capability() -> None:
    r = gh("policy", "simulate", SEED, "--job", json.dumps(PROD_NO_CAPABILITY))
    assert r.returncode == 2
    assert "missing_field" in r.stderr and "`meta.capability`" in r.stderr
    assert r.stdout == ""


def test_simulate_json_prints_the_refusal() -> None:
    r = gh("policy", "simulate", SEED, "--job", json.dumps(PROD_NO_CAPABILITY), "--json")
    assert r.returncode == 2
    assert json.loads(r.stdout)["error"]["code"] == "missing_field"
    assert json.loads(r.stdout)["error"]["details"]["fields"] == ["meta.capability"]


def test_explain_refuses_a_deploy_without_capability() -> None:
    r = gh("policy", "explain", SEED, "--job", json.dumps(PROD_NO_CAPABILITY))
    assert r.returncode == 2
    assert "`meta.capability`" in r.stderr


def test_policy_test_expects_a_refusal(tmp_path: Path) -> None:
    fixtures = write(
        tmp_path,
        "f.yaml",
        "cases:\n"
        "  - name: refused\n"
        "    job: {topic: job.deploy.apply, prompt: terraform apply, labels: {env: prod}}\n"
        "    expect: {error: missing_field}\n"
        "  - name: wrongly allowed\n"
        "    job: {topic: job.deploy.apply, prompt: terraform apply, labels: {env: prod}}\n"
        "    expect: {decision: allow}\n",
    )
    r = gh("policy", "test", SEED, fixtures)
    assert r.returncode == 1
    assert r.stdout.splitlines() == [
        "PASS refused",
        "FAIL wrongly allowed: expected allow, got refused (missing_field: meta.capability)",
        "1 passed, 1 failed",
    ]


def test_diff_reports_a_job_the_new_bundle_refuses(tmp_path: Path) -> None:
    old = write(tmp_path, "old.yaml", "default_decision: allow\n")
    jobs = write(tmp_path, "jobs.jsonl", json.dumps(PROD_NO_CAPABILITY) + "\n")
    r = gh("policy", "diff", old, SEED, "--jobs", jobs, "--json")
    assert r.returncode == 1, r.stderr
    change = json.loads(r.stdout)["changes"][0]
    assert change["old"] == {"decision": "allow", "rule_id": "default"}
    assert change["new"] == {"decision": None, "error": "missing_field", "fields": ["meta.capability"]}


# -- check ---------------------------------------------------------------------------------------


def test_check_rejects_a_classifier_regex_that_does_not_compile(tmp_path: Path) -> None:
    bundle = write(
        tmp_path,
        "bad.yaml",
        "version: 1\nclassifiers:\n  - name: x\n    regex: '(unclosed'\n    risk_tag: x\n",
    )
    r = gh("policy", "check", bundle)
    assert r.returncode == 2
    assert r.stderr.startswith(f"error: {bundle}: line 3: bad classifier pattern")


def test_check_reads_a_signed_envelope(tmp_path: Path) -> None:
    key = tmp_path / "k"
    assert gh("keys", "generate", "--out", key).returncode == 0
    signed = tmp_path / "signed.json"
    r = gh("policy", "sign", SEED, "--key", f"{key}.key", "--serial", 3, "--out", signed)
    assert r.returncode == 0, r.stderr
    r = gh("policy", "check", signed)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"ok: seed: 3 rules, 2 output rules, snapshot {load(SEED.read_text()).snapshot}"
    assert lines[1].startswith("envelope: key `") and "serial 3" in lines[1]


def test_check_on_an_envelope_reports_errors_of_the_bundle_inside(tmp_path: Path) -> None:
    env = write(tmp_path, "e.json", json.dumps({"bundle": "rules:\n  - id: a\n    decision: nope\n"}))
    r = gh("policy", "check", env)
    assert r.returncode == 2
    assert "bundle: line 3" in r.stderr and "bad decision `nope`" in r.stderr


def test_check_canonical_prints_the_canonical_form(tmp_path: Path) -> None:
    bundle = write(
        tmp_path,
        "seedform.yaml",
        """\
rules:
  - id: block-prod-db-delete
    target: "adapter:db:delete_*"
    condition: {eq: {labels.env: prod}}
    action: deny
    audit: true
""",
    )
    r = gh("policy", "check", bundle, "--canonical")
    assert r.returncode == 0, r.stderr
    data = yaml.safe_load(r.stdout)
    assert data["version"] == 1
    assert data["rules"] == [
        {
            "id": "block-prod-db-delete",
            "decision": "deny",
            "reason": "matched rule `block-prod-db-delete`",
            "match": {"targets": ["adapter:db:delete_*"]},
            "conditions": [{"eq": {"labels.env": "prod"}}],
            "audit": True,
        }
    ]
    # The canonical text is itself a bundle with the same rules.
    again = write(tmp_path, "canonical.yaml", r.stdout)
    assert gh("policy", "check", again).returncode == 0
    assert load(r.stdout).rules[0].match == load(bundle.read_text()).rules[0].match

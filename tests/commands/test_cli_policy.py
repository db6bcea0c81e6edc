"""`gatehouse policy ...`, driven as a user would: a real process, its output and exit code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from harness import gh

from gatehouse.commands._jobs import job_context, judged_context
from gatehouse.errors import BadRequest
from gatehouse.policy import load

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "examples" / "policies" / "seed.yaml"
SEED_TESTS = ROOT / "examples" / "policies" / "seed.tests.yaml"
SEED_JOBS = ROOT / "examples" / "policies" / "seed.jobs.jsonl"

PROD_DEPLOY = {
    "topic": "job.deploy.apply",
    "prompt": "terraform apply",
    "labels": {"env": "prod"},
    "meta": {"capability": "infra.write"},
}
# Destructive by its prompt, as the server classifies it (a declared command_class is dropped).
DESTRUCTIVE = {"topic": "job.exec.shell", "prompt": "rm -rf /"}

# An error on a known line: line 9 names an unknown decision.
BROKEN = """\
version: 1
name: broken
rules:
  - id: fine
    decision: allow
    match:
      topics: ["job.demo.**"]
  - id: typo
    decision: dney
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# -- check ---------------------------------------------------------------------------------------


def test_check_ok_prints_counts_and_snapshot() -> None:
    r = gh("policy", "check", SEED)
    assert r.returncode == 0, r.stderr
    snapshot = load(SEED.read_text()).snapshot
    assert r.stdout.strip() == f"ok: seed: 3 rules, 2 output rules, snapshot {snapshot}"


def test_check_reports_the_line_of_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.yaml", BROKEN)
    r = gh("policy", "check", path)
    assert r.returncode == 2
    assert r.stdout == ""
    err = r.stderr.strip()
    assert err.startswith(f"error: {path}: line 9: ")
    assert "`dney`" in err
    assert not err.endswith(".")


def test_check_missing_file_exits_2(tmp_path: Path) -> None:
    r = gh("policy", "check", tmp_path / "nope.yaml")
    assert r.returncode == 2
    assert r.stderr.strip() == f"error: {tmp_path / 'nope.yaml'}: no such file"


def test_unknown_subcommand_is_a_usage_error() -> None:
    r = gh("policy", "frobnicate")
    assert r.returncode == 2


def test_help_lists_the_subcommands() -> None:
    r = gh("policy", "--help")
    assert r.returncode == 0
    for name in ("check", "simulate", "explain", "test", "diff"):
        assert f"  {name} " in r.stdout


# -- simulate ------------------------------------------------------------------------------------


def test_simulate_prod_deploy_requires_approval() -> None:
    r = gh("policy", "simulate", SEED, "--job", json.dumps(PROD_DEPLOY))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == (
        "decision: require_approval  rule: require-approval-prod-write  "
        "reason: production writes need a human approval"
    )
    assert any(line.startswith("  - plan-instead: ") for line in lines)
    assert any(line.startswith("  - staging-first: ") for line in lines)


def test_simulate_exits_0_on_deny() -> None:
    r = gh("policy", "simulate", SEED, "--job", json.dumps(DESTRUCTIVE))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("decision: deny  rule: deny-destructive-exec  ")


def test_simulate_json_carries_the_decision_and_snapshot() -> None:
    r = gh("policy", "simulate", SEED, "--job", json.dumps(PROD_DEPLOY), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["decision"] == "require_approval"
    assert out["rule_id"] == "require-approval-prod-write"
    assert out["approval_ttl"] == 900
    assert [x["id"] for x in out["remediations"]] == ["plan-instead", "staging-first"]
    assert out["policy_snapshot"] == load(SEED.read_text()).snapshot


def test_simulate_reads_the_job_from_a_file(tmp_path: Path) -> None:
    job = write(tmp_path, "job.json", json.dumps({**PROD_DEPLOY, "approved": True}))
    r = gh("policy", "simulate", SEED, "--job", f"@{job}", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["rule_id"] == "default"


def test_simulate_reads_the_job_from_stdin() -> None:
    r = gh("policy", "simulate", SEED, "--job", "@-", "--json", stdin=json.dumps(DESTRUCTIVE))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["decision"] == "deny"


def test_simulate_label_any_of(tmp_path: Path) -> None:
    bundle = write(
        tmp_path,
        "anyof.yaml",
        """\
version: 1
default_decision: allow
rules:
  - id: prod-like
    decision: deny
    match:
      labels: {env: [prod, production]}
""",
    )
    decisions = {}
    for env in ("prod", "production", "staging"):
        job = json.dumps({"topic": "job.x.y", "labels": {"env": env}})
        r = gh("policy", "simulate", bundle, "--job", job, "--json")
        assert r.returncode == 0, r.stderr
        decisions[env] = json.loads(r.stdout)["decision"]
    assert decisions == {"prod": "deny", "production": "deny", "staging": "allow"}


@pytest.mark.parametrize(
    ("job", "message"),
    [
        ('{"topic": ', "error: --job: not valid JSON: expecting value at column 11"),
        ("[1, 2]", "error: --job: a job must be a JSON object, got `[1, 2]`"),
        ('{"prompt": "hi"}', "error: --job: a job needs a `topic`"),
        ('{"topic": 7}', "error: --job: `topic` must be a string, got `7`"),
        (
            '{"topic": "job.a.b", "labels": {"env": 1}}',
            "error: --job: label `env` must be a string, got `1`",
        ),
        (
            '{"topic": "job.a.b", "labels": ["env"]}',
            'error: --job: `labels` must be an object of strings, got `["env"]`',
        ),
        (
            '{"topic": "job.a.b", "approved": "yes"}',
            "error: --job: `approved` must be true or false, got `yes`",
        ),
        ('{"topic": "job.a.b", "lables": {}}', "error: --job: unknown key `lables` in the job"),
    ],
)
def test_simulate_rejects_a_bad_job(job: str, message: str) -> None:
    r = gh("policy", "simulate", SEED, "--job", job)
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.strip().startswith(message)


def test_simulate_missing_job_file_exits_2(tmp_path: Path) -> None:
    r = gh("policy", "simulate", SEED, "--job", f"@{tmp_path / 'none.json'}")
    assert r.returncode == 2
    assert "no such file" in r.stderr


def test_simulate_invalid_policy_exits_2(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.yaml", BROKEN)
    r = gh("policy", "simulate", path, "--job", json.dumps(PROD_DEPLOY))
    assert r.returncode == 2
    assert "line 9" in r.stderr


# -- job_context ---------------------------------------------------------------------------------


def test_job_context_flattens_meta_and_fills_defaults() -> None:
    ctx = job_context({**PROD_DEPLOY, "meta": {"capability": "infra.write", "risk_tags": ["a"]}})
    assert ctx == {
        "topic": "job.deploy.apply",
        "tenant": "default",
        "labels": {"env": "prod"},
        "requester_role": "agent",
        "capability": "infra.write",
        "risk_tags": ["a"],
    }


def test_job_context_passes_approved_only_when_given() -> None:
    assert "approved" not in job_context({"topic": "job.a.b"})
    assert job_context({"topic": "job.a.b", "approved": False})["approved"] is False
    assert job_context({"topic": "job.a.b", "approved": True})["approved"] is True


def test_job_context_keeps_given_tenant_and_role() -> None:
    ctx = job_context({"topic": "job.a.b", "tenant": "acme", "requester_role": "platform-admin"})
    assert (ctx["tenant"], ctx["requester_role"]) == ("acme", "platform-admin")


def test_job_context_rejects_bad_risk_tags() -> None:
    with pytest.raises(BadRequest, match="risk_tags") as info:
        job_context({"topic": "job.a.b", "meta": {"risk_tags": "change"}})
    assert info.value.code == "invalid_job"


# -- explain -------------------------------------------------------------------------------------


def test_explain_prints_a_row_per_rule_and_the_winner() -> None:
    r = gh("policy", "explain", SEED, "--job", json.dumps(DESTRUCTIVE))
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines()]
    assert rows[0] == ["RULE", "DECISION", "RESULT"]
    assert rows[1] == ["deny-destructive-exec", "deny", "MATCH"]
    assert rows[2] == ["require-approval-prod-write", "require_approval", "failed:", "labels.env"]
    assert rows[3] == ["require-approval-prod-undeclared", "require_approval", "failed:", "labels.env"]
    assert "winner: deny-destructive-exec (deny)" in r.stdout
    assert "why: `deny-destructive-exec` is the only matching rule" in r.stdout


def test_explain_default_winner() -> None:
    r = gh("policy", "explain", SEED, "--job", '{"topic": "job.demo.read"}')
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines()]
    assert ["deny-destructive-exec", "deny", "failed:", "topics"] in rows
    assert "winner: default (allow)" in r.stdout


def test_explain_json_is_the_explanation() -> None:
    r = gh("policy", "explain", SEED, "--job", json.dumps(PROD_DEPLOY), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    seed = load(SEED.read_text())
    expected = seed.explain(judged_context(seed, PROD_DEPLOY)).to_dict()
    assert out == json.loads(json.dumps(expected))
    assert out["winner"] == "require-approval-prod-write"
    assert [t["failed_field"] for t in out["rules"]] == ["topics", None, "conditions[0]"]


def test_explain_bad_job_exits_2() -> None:
    r = gh("policy", "explain", SEED, "--job", "not json")
    assert r.returncode == 2
    assert r.stderr.startswith("error: --job: not valid JSON")


# -- test ----------------------------------------------------------------------------------------


def test_seed_fixtures_pass() -> None:
    r = gh("policy", "test", SEED, SEED_TESTS)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[-1] == f"{len(lines) - 1} passed, 0 failed"
    assert len(lines) > 10
    assert all(line.startswith("PASS ") for line in lines[:-1])


def test_a_failing_case_exits_1(tmp_path: Path) -> None:
    fixtures = write(
        tmp_path,
        "f.yaml",
        """\
cases:
  - name: demo is allowed
    job: {topic: job.demo.read}
    expect: {decision: allow}
  - name: wrongly expects a deny
    job: {topic: job.deploy.apply, labels: {env: staging}, meta: {capability: infra.write}}
    expect: {decision: deny, rule_id: deny-destructive-exec}
  - name: right decision, wrong rule
    job: {topic: job.exec.shell, prompt: rm -rf /}
    expect: {decision: deny, rule_id: some-other-rule}
""",
    )
    r = gh("policy", "test", SEED, fixtures)
    assert r.returncode == 1
    assert r.stdout.splitlines() == [
        "PASS demo is allowed",
        "FAIL wrongly expects a deny: expected deny (rule deny-destructive-exec), got allow (rule default)",
        "FAIL right decision, wrong rule: expected deny (rule some-other-rule), "
        "got deny (rule deny-destructive-exec)",
        "1 passed, 2 failed",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cases: [\n", "not valid YAML"),
        ("tests: []\n", "fixtures need a top-level `cases` list"),
        ("cases: []\n", "`cases` must be a non-empty list"),
        (
            "cases:\n  - name: a\n    job: {topic: job.a.b}\n    expect: {decision: maybe}\n",
            "line 2: case `a`: bad expected decision `maybe`",
        ),
        (
            "cases:\n  - name: a\n    job: {topic: job.a.b}\n    expect: {decision: allow}\n"
            "  - name: b\n    job: {labels: {}}\n    expect: {decision: allow}\n",
            "line 5: case `b`: a job needs a `topic`",
        ),
        (
            "cases:\n  - name: a\n    job: {topic: job.a.b}\n    expect: {decision: allow}\n"
            "    expected: {decision: deny}\n",
            "line 2: unknown key `expected` in a case",
        ),
    ],
)
def test_invalid_fixtures_exit_2(tmp_path: Path, text: str, message: str) -> None:
    fixtures = write(tmp_path, "f.yaml", text)
    r = gh("policy", "test", SEED, fixtures)
    assert r.returncode == 2, r.stdout
    assert r.stderr.startswith(f"error: {fixtures}: ")
    assert message in r.stderr


def test_test_with_invalid_policy_exits_2(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.yaml", BROKEN)
    r = gh("policy", "test", path, SEED_TESTS)
    assert r.returncode == 2
    assert "line 9" in r.stderr


# -- diff ----------------------------------------------------------------------------------------


def _widened(tmp_path: Path) -> Path:
    """The seed policy, with `db.write` also needing approval in prod."""
    text = SEED.read_text()
    assert 'capabilities: ["infra.write"]' in text
    return write(tmp_path, "new.yaml", text.replace('["infra.write"]', '["infra.write", "db.write"]'))


def test_diff_of_identical_bundles_exits_0() -> None:
    r = gh("policy", "diff", SEED, SEED, "--jobs", SEED_JOBS)
    assert r.returncode == 0, r.stderr
    n = len([line for line in SEED_JOBS.read_text().splitlines() if line.strip()])
    assert r.stdout.strip() == f"0 of {n} jobs change decision"


def test_diff_lists_the_one_job_that_changes(tmp_path: Path) -> None:
    new = _widened(tmp_path)
    jobs = write(
        tmp_path,
        "jobs.jsonl",
        "\n".join(
            json.dumps(j)
            for j in [
                PROD_DEPLOY,
                DESTRUCTIVE,
                {
                    "topic": "job.db.migrate",
                    "labels": {"env": "prod"},
                    "meta": {"capability": "db.write"},
                },
                {
                    "topic": "job.db.migrate",
                    "labels": {"env": "dev"},
                    "meta": {"capability": "db.write"},
                },
            ]
        )
        + "\n",
    )
    r = gh("policy", "diff", SEED, new, "--jobs", jobs)
    assert r.returncode == 1, r.stderr
    assert r.stdout.splitlines() == [
        "line 3: job.db.migrate: allow (default) -> require_approval (require-approval-prod-write)",
        "1 of 4 jobs change decision",
    ]

    r = gh("policy", "diff", SEED, new, "--jobs", jobs, "--json")
    assert r.returncode == 1
    out = json.loads(r.stdout)
    assert (out["jobs"], out["changed"]) == (4, 1)
    assert out["changes"] == [
        {
            "line": 3,
            "topic": "job.db.migrate",
            "old": {"decision": "allow", "rule_id": "default"},
            "new": {"decision": "require_approval", "rule_id": "require-approval-prod-write"},
        }
    ]
    assert out["old_snapshot"] != out["new_snapshot"]


def test_diff_seed_jobs_under_the_widened_bundle(tmp_path: Path) -> None:
    r = gh("policy", "diff", SEED, _widened(tmp_path), "--jobs", SEED_JOBS)
    assert r.returncode == 1
    assert r.stdout.splitlines()[-1].startswith("1 of ")


def test_diff_malformed_line_exits_2_naming_it(tmp_path: Path) -> None:
    jobs = write(tmp_path, "jobs.jsonl", json.dumps(PROD_DEPLOY) + "\n\n{oops\n")
    r = gh("policy", "diff", SEED, SEED, "--jobs", jobs)
    assert r.returncode == 2
    assert r.stderr.startswith(f"error: {jobs}: line 3: not valid JSON")


def test_diff_invalid_job_line_exits_2(tmp_path: Path) -> None:
    jobs = write(tmp_path, "jobs.jsonl", json.dumps(PROD_DEPLOY) + "\n" + '{"topic": 3}\n')
    r = gh("policy", "diff", SEED, SEED, "--jobs", jobs)
    assert r.returncode == 2
    assert r.stderr.strip() == f"error: {jobs}: line 2: `topic` must be a string, got `3`"


def test_diff_invalid_new_policy_exits_2(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.yaml", BROKEN)
    r = gh("policy", "diff", SEED, path, "--jobs", SEED_JOBS)
    assert r.returncode == 2
    assert r.stderr.startswith(f"error: {path}: line 9: ")

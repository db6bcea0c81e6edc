"""`gatehouse policy simulate|explain|test` take steps (issue 15): a tool call with the session
history it assumes is judged offline with the context the server's step gate builds
(`gatehouse.domain.steps.step_context`). Driven as a user would, through a real process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gatehouse.domain.steps import step_context, step_of
from gatehouse.policy import load

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "examples" / "policies" / "steps.yaml"
FIXTURES = ROOT / "examples" / "policies" / "steps.tests.yaml"
IBAN = "FR7630006000011234567890189"
TRUSTED = "DE89370400440532013000"


def gh(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gatehouse", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def pay(to: str, *, trusted: bool = False, output: str = f"new bank details: {IBAN}") -> dict[str, Any]:
    return {
        "adapter": "bank",
        "action": "send_money",
        "params": {"to": to, "amount": 950},
        "session": {
            "task": "pay my electricity bill",
            "history": [
                {
                    "adapter": "web",
                    "action": "read",
                    "output": output,
                    "decision": "allow",
                    "trusted": trusted,
                }
            ],
        },
    }


def decide(step: dict[str, Any], *extra: str) -> dict[str, Any]:
    r = gh("policy", "simulate", BUNDLE, "--step", json.dumps(step), "--json", *extra)
    assert r.returncode == 0, r.stderr
    out: dict[str, Any] = json.loads(r.stdout)
    return out


# -- simulate / explain ------------------------------------------------------------------------


def test_simulate_denies_a_payee_read_from_untrusted_output() -> None:
    out = decide(pay(IBAN))
    assert (out["decision"], out["rule_id"]) == ("deny", "deny-untrusted-payee")
    assert out["target"] == "adapter:bank:send_money"
    assert out["policy_snapshot"] == load(BUNDLE.read_text()).snapshot


def test_simulate_allows_a_trusted_payee_after_the_same_read() -> None:
    out = decide(pay(TRUSTED))
    assert (out["decision"], out["rule_id"]) == ("allow", "allow-send-money")


def test_the_same_payee_from_trusted_output_is_not_untrusted() -> None:
    out = decide(pay(IBAN, trusted=True))
    assert (out["decision"], out["rule_id"]) == ("allow", "allow-send-money")


def test_simulate_prints_the_target_and_decision(tmp_path: Path) -> None:
    path = tmp_path / "step.json"
    path.write_text(json.dumps(pay(IBAN)), encoding="utf-8")
    r = gh("policy", "simulate", BUNDLE, "--step", f"@{path}")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "target: adapter:bank:send_money",
        "decision: deny  rule: deny-untrusted-payee  reason: payee taken from untrusted content "
        "and not a trusted payee",
    ]


def test_explain_a_step() -> None:
    r = gh("policy", "explain", BUNDLE, "--step", json.dumps(pay(IBAN)))
    assert r.returncode == 0, r.stderr
    assert "winner: deny-untrusted-payee (deny)" in r.stdout
    assert "allow-reads" in r.stdout and "failed: targets" in r.stdout
    r = gh("policy", "explain", BUNDLE, "--step", json.dumps(pay(IBAN)), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    matched = {t["rule_id"] for t in out["rules"] if t["matched"]}
    assert matched == {"allow-send-money", "deny-untrusted-payee", "approve-payment-after-untrusted-read"}


def test_mail_outside_the_company_needs_approval() -> None:
    step = {"adapter": "mail", "action": "send", "params": {"to": ["a@example.com", "e@evil.net"]}}
    out = decide(step)
    assert (out["decision"], out["rule_id"]) == ("require_approval", "approve-external-mail")


# -- the context builder -------------------------------------------------------------------------


def test_step_context_fields() -> None:
    p = load(BUNDLE.read_text())
    body = pay(IBAN)
    body["params"]["note"] = "rm -rf / and mail bob@corp.com"
    body["session"]["history"].append({"adapter": "bank", "action": "send_money", "decision": "deny"})
    ctx = step_context(p, step_of(body))
    assert ctx["target"] == "adapter:bank:send_money"
    assert (ctx["adapter"], ctx["action"]) == ("bank", "send_money")
    assert ctx["labels"]["command_class"] == "destructive"
    assert "iban" in ctx["detected"] and "email" in ctx["detected"]
    assert "iban" in ctx["detections"]["params.to"]
    assert ctx["session"] == {
        "untrusted_read": True,
        "step_count": 2,
        "denied_count": 1,
        "allowed_targets": ["adapter:web:read"],
    }
    assert ctx["provenance"].from_untrusted(IBAN)
    assert ctx["provenance"].from_prompt("electricity")
    assert (ctx["tenant"], ctx["requester_role"]) == ("default", "agent")


def test_a_lean_context_leaves_out_only_what_no_rule_reads() -> None:
    scanned: list[str] = []

    def scan(text: str) -> list[str]:
        scanned.append(text)
        return ["url"] if "http" in text else []

    step = step_of(
        {"adapter": "web", "action": "read", "params": {"url": "https://x.example", "cmd": "rm -rf /"}}
    )
    blind = load('version: 1\nrules:\n  - {id: r, decision: deny, match: {targets: ["adapter:web:*"]}}\n')
    ctx = step_context(blind, step, scan=scan, lean=True)
    assert (scanned, ctx["detected"], ctx["labels"]) == ([], [], {})
    full = step_context(blind, step, scan=scan)  # the offline tools show everything
    assert full["detected"] == ["url"] and full["labels"]["command_class"] == "destructive"
    reading = load(
        'version: 1\nrules:\n  - {id: r, decision: deny, match: {targets: ["adapter:web:*"]},\n'
        "     conditions: [{contains: {detected: url}}, {eq: {labels.command_class: destructive}}]}\n"
    )
    ctx = step_context(reading, step, scan=scan, lean=True)
    assert ctx["detected"] == ["url"] and ctx["labels"]["command_class"] == "destructive"
    assert reading.decide(ctx).rule_id == "r"


# -- test fixtures with steps --------------------------------------------------------------------


def test_the_example_fixtures_pass() -> None:
    r = gh("policy", "test", BUNDLE, FIXTURES)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[-1].endswith("passed, 0 failed")
    assert "history" in FIXTURES.read_text()


def test_a_failing_step_case_exits_1(tmp_path: Path) -> None:
    fixtures = tmp_path / "f.yaml"
    fixtures.write_text(
        f"cases:\n  - name: wrong\n    step: {json.dumps(pay(IBAN))}\n    expect: {{decision: allow}}\n",
        encoding="utf-8",
    )
    r = gh("policy", "test", BUNDLE, fixtures)
    assert r.returncode == 1
    assert "FAIL wrong: expected allow, got deny (rule deny-untrusted-payee)" in r.stdout


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("step: [1]", "case `c`: a step must be a JSON object"),
        ("step: {adapter: bank, action: pay, params: [1]}", "`params` must be an object"),
        ("step: {adapter: bank}", "a step needs `action`"),
        ("step: {adapter: a, action: b}\n    job: {topic: x}", "a case needs one of `job` and `step`"),
        ("step: {adapter: a, action: b, session: {history: [{adapter: w}]}}", "needs `action`"),
    ],
)
def test_bad_step_cases_exit_2(tmp_path: Path, case: str, message: str) -> None:
    fixtures = tmp_path / "f.yaml"
    fixtures.write_text(
        f"cases:\n  - name: c\n    {case}\n    expect: {{decision: allow}}\n", encoding="utf-8"
    )
    r = gh("policy", "test", BUNDLE, fixtures)
    assert r.returncode == 2
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


# -- bad input on the command line ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--step", "[1]"], "error: --step: a step must be a JSON object, got `[1]`"),
        (
            ["--step", '{"adapter":"bank","action":"pay","params":"x"}'],
            "error: --step: the step: `params` must be an object, got `x`",
        ),
        (["--step", "{"], "error: --step: not valid JSON"),
        (["--step", '{"adapter":"bank","action":"pay","bogus":1}'], "unknown key `bogus`"),
        (
            ["--step", '{"adapter":"a","action":"b","session":{"history":{}}}'],
            "`session.history` must be a list",
        ),
        ([], "error: give exactly one of --job and --step"),
        (["--step", '{"adapter":"a","action":"b"}', "--job", '{"topic":"x"}'], "exactly one of"),
    ],
)
@pytest.mark.parametrize("command", ["simulate", "explain"])
def test_bad_steps_exit_2_with_one_line(command: str, args: list[str], message: str) -> None:
    r = gh("policy", command, BUNDLE, *args)
    assert r.returncode == 2
    assert r.stderr.startswith(message) or message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert r.stdout == ""

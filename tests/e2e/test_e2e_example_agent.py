"""The worked example of `examples/agents/` against a real server.

The assistant reads an invoice carrying an injected instruction and obeys it; the policy of
`examples/policies/assistant.yaml` lets the user's payment and mail through and stops the
injected ones by argument and provenance rules. Against a policy that allows every step the same
run pays the attacker: the example really attacks, and the policy is what stops it.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from harness import ROOT, Server, gh
from shellbook import Shell, commands, sh_block

from gatehouse.client import Client

POLICY = ROOT / "examples" / "policies" / "assistant.yaml"
FIXTURES = ROOT / "examples" / "policies" / "assistant.tests.yaml"
EXAMPLE = ROOT / "examples" / "agents"
ATTACKER_IBAN = "FR7630006000011234567890189"
ATTACKER_MAIL = "accounts@northwind-billing.net"
ADAPTERS = ["docs:read_document", "bank:pay_bill", "mail:send_email"]


def _assistant() -> ModuleType:
    spec = importlib.util.spec_from_file_location("assistant_example", EXAMPLE / "assistant.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(data_dir=tmp_path_factory.mktemp("assistant") / "data", policy=POLICY).start()
    yield s
    s.stop()


def test_the_injected_calls_are_stopped_and_the_task_goes_through(server: Server) -> None:
    key = server.identity("assistant", adapters=ADAPTERS)["api_key"]
    run = subprocess.run(
        [sys.executable, str(EXAMPLE / "assistant.py"), "--url", server.url, "--key", key, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    summary = json.loads(run.stdout)
    outcomes = [(c["tool"], c["outcome"], c.get("rule_id")) for c in summary["calls"]]
    assert outcomes == [
        ("read_document", "done", None),
        ("pay_bill", "denied", "deny-payee-from-untrusted-content"),
        ("send_email", "denied", "deny-recipient-from-untrusted-content"),
        ("pay_bill", "done", None),
        ("send_email", "done", None),
    ]
    injected_pay, injected_mail = summary["calls"][1]["args"], summary["calls"][2]["args"]
    assert injected_pay["payee"] == ATTACKER_IBAN and injected_mail["to"] == [ATTACKER_MAIL]
    # What really happened: the user's payment and receipt, nothing for the attacker.
    legit = {"payee": "GB33BUKB20201555555555", "amount": 86.4, "reference": "INV-0331"}
    assert summary["payments"] == [legit]
    assert [m["to"] for m in summary["outbox"]] == [["alice@example.com", "billing@northwind-power.co.uk"]]
    assert summary["calls"][3]["output"] == {"status": "paid", "confirmation": "PAY-0001"}
    # The server's record of the session: the same decisions, by the rules that made them.
    assert [(s["target"], s["decision"], s["rule_id"]) for s in summary["steps"]] == [
        ("adapter:docs:read_document", "allow", "allow-read-documents"),
        ("adapter:bank:pay_bill", "deny", "deny-payee-from-untrusted-content"),
        ("adapter:mail:send_email", "deny", "deny-recipient-from-untrusted-content"),
        ("adapter:bank:pay_bill", "allow", "allow-pay-known-payee"),
        ("adapter:mail:send_email", "allow", "allow-mail-to-company-or-task-recipients"),
    ]
    with server.client(key) as c:
        log = c.get("/api/v1/decisions", params={"stage": "step", "result": "deny"}).json()["decisions"]
    mine = [d for d in log if d["session_id"] == summary["session_id"]]
    assert sorted(d["rule_id"] for d in mine) == [
        "deny-payee-from-untrusted-content",
        "deny-recipient-from-untrusted-content",
    ]


def test_without_the_policy_the_injection_succeeds(tmp_path: Path) -> None:
    """The control run: every step allowed, the scripted model pays and mails the attacker."""
    allow_all = tmp_path / "allow-all.yaml"
    allow_all.write_text(
        "version: 1\nname: allow-all\ndefault_decision: deny\nrules:\n"
        "  - {id: allow-every-step, decision: allow, match: {targets: ['adapter:**']}}\n"
    )
    s = Server(data_dir=tmp_path / "data", policy=allow_all).start()
    try:
        key = s.identity("assistant", adapters=ADAPTERS)["api_key"]
        with Client(s.url, api_key=key) as client:
            summary: dict[str, Any] = _assistant().run(client)
    finally:
        s.stop()
    assert {"payee": ATTACKER_IBAN, "amount": 4800.0, "reference": "NWP-UPDATE"} in summary["payments"]
    assert [ATTACKER_MAIL] in [m["to"] for m in summary["outbox"]]


def test_the_policy_cases_pass_with_the_cli() -> None:
    out = gh("policy", "test", POLICY, FIXTURES)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "FAIL" not in out.stdout and out.stdout.strip().endswith("12 passed, 0 failed")


def test_the_example_readme_runs_as_printed(tmp_path: Path) -> None:
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    block = commands(sh_block(EXAMPLE / "README.md", "Run it"))
    shell = Shell(tmp_path)
    try:
        printed: dict[str, str] = {}
        for command in block:
            rc, out = shell.run(command)
            assert rc == 0, f"`{command}` exited {rc}: {out}\n{shell.log.read_text()}"
            printed[command] = out
    finally:
        shell.close()
    narrated = next(out for cmd, out in printed.items() if "assistant.py" in cmd)
    assert narrated.count("DENIED") == 2 and narrated.count("ALLOWED") == 3, narrated
    assert "by rule deny-payee-from-untrusted-content" in narrated
    assert "by rule deny-recipient-from-untrusted-content" in narrated
    assert "paid 86.40 to GB33BUKB20201555555555 (INV-0331)" in narrated
    assert ATTACKER_IBAN not in narrated.split("what really happened:")[1]
    fixtures = next(out for cmd, out in printed.items() if "policy test" in cmd)
    assert fixtures.strip().endswith("12 passed, 0 failed")

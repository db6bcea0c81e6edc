"""`gatehouse policy diff --decisions FILE` replays step records offline from the `step_replay`
an export carries (the server-driven test is `tests/e2e/test_e2e_policy_diff_log.py`): the
session's bound fails `from_untrusted` closed, a catalog change refuses an action, the job's
topic reaches rules, and what cannot be replayed is counted by reason. Driven through a real
process, as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

OLD = """
version: 1
name: old
default_decision: deny
rules:
  - id: allow-all-steps
    decision: allow
    reason: "steps are allowed"
    match: {targets: ["adapter:*:*"]}
"""
NEW = (
    OLD
    + """
  - id: approve-untrusted-ticket
    decision: require_approval
    reason: "a ticket read from untrusted content"
    match: {targets: ["adapter:crm:update"]}
    conditions:
      - from_untrusted: params.ticket
  - id: deny-billing-writes
    decision: deny
    reason: "no CRM writes inside billing jobs"
    match: {targets: ["adapter:crm:update"]}
    conditions:
      - eq: {topic: job.billing.run}
"""
)
# NEW's catalog lists `crm` without `update`: the server would refuse the step (404).
CATALOG = OLD.replace(
    "rules:", "adapters:\n  crm:\n    kind: external\n    actions:\n      read: {effect: read}\nrules:"
)


def gh(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gatehouse", *map(str, args)],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip


def record(
    n: int,
    ticket: str,
    *,
    output: str = "escalate TKT-448812",
    bounded: bool = False,
    topic: str | None = None,
    **more: Any,
) -> dict[str, Any]:
    job: dict[str, Any] = {"tenant": "acme", "requester_role": "agent"}
    if topic is not None:
        job["topic"] = topic
    return {
        "decision_id": f"dec_{n}",
        "stage": "step",
        "result": "allow",
        "rule_id": "allow-all-steps",
        "target": "adapter:crm:update",
        "session_id": f"ses_{n}",
        "step_id": "s2",
        "step_replay": {
            "session": {
                "session_id": f"ses_{n}",
                "task": "tidy the CRM",
                "bounded": bounded,
                "untrusted_bound": 4096,
            },
            "step": {
                "step_id": "s2",
                "adapter": "crm",
                "action": "update",
                "params": {"ticket": ticket},
                "job": job,
            },
            "history": [
                {
                    "step_id": "s1",
                    "adapter": "web",
                    "action": "read",
                    "decision": "allow",
                    "status": "succeeded",
                    "output": None if bounded else {"text": output},
                    "trusted": False,
                }
            ],
        },
        **more,
    }


def diff(tmp_path: Path, records: list[dict[str, Any]], new: str = NEW) -> tuple[int, dict[str, Any]]:
    old_file, new_file, log = tmp_path / "old.yaml", tmp_path / "new.yaml", tmp_path / "log.jsonl"
    old_file.write_text(OLD, encoding="utf-8")
    new_file.write_text(new, encoding="utf-8")
    log.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    r = gh("policy", "diff", old_file, new_file, "--decisions", log, "--json")
    assert r.returncode in (0, 1), r.stderr
    return r.returncode, json.loads(r.stdout)


def changed(result: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {
        q["decision_id"]: (g["new"]["decision"], g["new"]["rule_id"])
        for g in result["groups"]
        for q in g["requests"]
    }


def test_provenance_session_facts_and_job_fields_are_the_gates(tmp_path: Path) -> None:
    code, result = diff(
        tmp_path,
        [
            record(1, "TKT-448812"),  # copied from the untrusted read
            record(2, "TKT-100000"),  # from nowhere untrusted
            record(3, "TKT-100000", bounded=True),  # past its bound the session fails closed
            record(4, "TKT-100000", topic="job.billing.run", job_id="job_4"),  # inside a billing job
        ],
    )
    assert code == 1
    assert changed(result) == {
        "dec_1": ("require_approval", "approve-untrusted-ticket"),
        "dec_3": ("require_approval", "approve-untrusted-ticket"),
        "dec_4": ("deny", "deny-billing-writes"),
    }
    assert (result["replayed"], result["unlike_recorded"], result["skipped"]) == (4, 0, {})


def test_an_action_the_new_catalog_lacks_is_refused(tmp_path: Path) -> None:
    code, result = diff(tmp_path, [record(1, "TKT-100000")], new=CATALOG)
    assert code == 1
    [group] = result["groups"]
    assert group["new"] == {"decision": "refused", "rule_id": "unknown_action"}


def test_what_cannot_be_replayed_is_counted_by_reason(tmp_path: Path) -> None:
    bad_history = record(5, "TKT-448812")
    bad_history["step_replay"]["history"][0]["decision"] = "maybe"
    no_params = record(6, "TKT-448812")
    del no_params["step_replay"]["step"]["params"]
    old_export = record(7, "TKT-448812")
    del old_export["step_replay"]
    code, result = diff(
        tmp_path,
        [
            record(1, "TKT-448812", approval_event="approval.consumed"),
            record(2, "TKT-448812", rule_id="rate_limit", result="deny"),
            {**record(3, "TKT-448812"), "step_replay": {"missing": "session gone"}},
            {**record(4, "TKT-448812"), "step_replay": {"missing": "step gone"}},
            bad_history,
            no_params,
            old_export,
            {"decision_id": "dec_8", "stage": "output", "result": "allow"},
        ],
    )
    assert code == 0 and result["replayed"] == 0 and result["groups"] == []
    assert result["skipped"] == {
        "settled by a person": 1,
        "decided before policy": 1,
        "session gone": 1,
        "step gone": 1,
        "step not judgeable": 2,
        "session not kept": 1,
        "stage output": 1,
    }

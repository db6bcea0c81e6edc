"""`gatehouse.policy.lint`: each kind of finding on a minimal bundle, with its rules and lines;
what lint must not claim (overlaps it cannot prove, shadowing it cannot prove); the shipped
bundles lint without errors, and each of their warnings is one we have read and kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatehouse.policy import load
from gatehouse.policy.lint import Finding, lint

REPO = Path(__file__).resolve().parents[2]


def findings(text: str, **kw: int) -> list[Finding]:
    return lint(load(text), **kw)


def only(text: str, kind: str, **kw: int) -> Finding:
    found = [f for f in findings(text, **kw) if f.kind == kind]
    assert len(found) == 1, found
    return found[0]


SHADOWED = """\
version: 1
rules:
  - id: deny-deploys
    decision: deny
    match: {topics: ["job.deploy.**"]}
  - id: allow-prod-apply
    decision: allow
    match:
      topics: ["job.deploy.apply"]
      labels: {env: [prod]}
"""


def test_shadowed_by_a_more_restrictive_rule_is_an_error_with_lines() -> None:
    f = only(SHADOWED, "shadowed")
    assert f.severity == "error"
    assert f.rules == ("allow-prod-apply", "deny-deploys")
    assert f.lines == (6, 3)
    assert "never decides" in f.why


def test_shadowed_by_an_earlier_rule_with_the_same_decision_is_a_warning() -> None:
    text = """\
version: 1
rules:
  - id: broad
    decision: deny
    reason: broad
    match: {topics: ["job.db.*"], capabilities: ["db.*"]}
  - id: narrow
    decision: deny
    reason: narrow
    match: {topics: ["job.db.write"], capabilities: ["db.write"]}
    conditions: [{gt: {approved: 1}}]
"""
    f = only(text, "shadowed")
    assert (f.severity, f.rules, f.lines) == ("warning", ("narrow", "broad"), (7, 3))


def test_a_condition_the_broader_rule_lacks_does_not_stop_shadowing_but_one_it_adds_does() -> None:
    # The earlier rule's extra condition means it does not match everything the later one does.
    text = """\
version: 1
rules:
  - id: deny-unapproved
    decision: deny
    match: {topics: ["job.deploy.**"]}
    conditions: [{not: {approved: true}}]
  - id: allow-apply
    decision: allow
    match: {topics: ["job.deploy.apply"]}
"""
    assert not [f for f in findings(text) if f.kind == "shadowed"]
    f = only(text, "conflict")
    assert f.details == {
        "winner": "deny-unapproved",
        "losers": [{"rule": "allow-apply", "decision": "allow", "overlap": "partial"}],
    }
    assert f.lines == (3, 7)


def test_conflict_carve_out_names_winner_and_loser() -> None:
    text = """\
version: 1
rules:
  - id: allow-mail
    decision: allow
    match: {targets: ["adapter:mail:send"]}
  - id: approve-external
    decision: require_approval
    match: {targets: ["adapter:mail:send"]}
    conditions: [{not_domain_in: {params.to: [example.com]}}]
"""
    f = only(text, "conflict")
    assert f.rules == ("approve-external", "allow-mail")
    assert f.details["losers"][0]["overlap"] == "carve_out"
    assert "`allow-mail` (allow) loses every request `approve-external` matches" in f.why


def test_disjoint_matches_are_no_conflict() -> None:
    text = """\
version: 1
rules:
  - id: deny-prod
    decision: deny
    match: {topics: ["job.x.*"], labels: {env: [prod]}}
  - id: allow-staging
    decision: allow
    match: {topics: ["job.x.*"]}
    conditions: [{eq: {labels.env: staging}}]
  - id: big
    decision: require_approval
    match: {targets: ["adapter:bank:pay"]}
    conditions: [{gt: {params.amount: 1000}}]
  - id: small
    decision: allow
    match: {targets: ["adapter:bank:pay"]}
    conditions: [{lte: {params.amount: 1000}}]
  - id: other-topic
    decision: deny
    match: {topics: ["job.y.**"]}
  - id: with-cap
    decision: allow
    match: {topics: ["job.z.*"], capabilities: [infra.write]}
  - id: without-cap
    decision: deny
    match: {topics: ["job.z.*"]}
    conditions: [{not: {exists: capability}}]
"""
    assert findings(text) == []


def test_reason_order() -> None:
    text = """\
version: 1
rules:
  - id: deny-a
    decision: deny
    reason: first reason
    match: {topics: ["job.a.*"]}
    conditions: [{eq: {labels.team: red}}]
  - id: deny-b
    decision: deny
    reason: second reason
    match: {topics: ["job.*.run"]}
"""
    f = only(text, "reason_order")
    assert (f.severity, f.rules, f.lines) == ("warning", ("deny-a", "deny-b"), (3, 8))


@pytest.mark.parametrize(
    ("conditions", "why"),
    [
        (
            "[{gt: {params.amount: 10}}, {lt: {params.amount: 5}}]",
            "`params.amount` gt 10 and lt 5",
        ),
        ("[{in_set: {params.to: empty}}]", "`in_set` on `empty`, which hold no member"),
        ("[{exists: params.x}, {not: {exists: params.x}}]", "both present and absent"),
        ("[{eq: {effect: reed}}]", "never `reed`"),
        ("[{eq: {labels.env: prod}}, {eq: {labels.env: dev}}]", "values that exclude each other"),
    ],
)
def test_unreachable_by_contradicting_conditions(conditions: str, why: str) -> None:
    text = f"""\
version: 1
sets: {{empty: []}}
rules:
  - id: fine
    decision: allow
    match: {{targets: ["adapter:a:b"]}}
  - id: never
    decision: deny
    match: {{targets: ["adapter:a:b"]}}
    conditions: {conditions}
"""
    f = only(text, "unreachable")
    assert (f.severity, f.rules, f.lines) == ("error", ("never",), (7,))
    assert why in f.why


def test_unreachable_condition_against_the_match() -> None:
    text = """\
version: 1
rules:
  - id: never
    decision: deny
    match: {topics: ["job.**"], labels: {env: [prod]}}
    conditions: [{eq: {labels.env: staging}}]
"""
    assert only(text, "unreachable").lines == (3,)


CATALOG = """\
version: 1
adapters:
  bank:
    kind: external
    actions: {send_money: {effect: write}, get_balance: {effect: read}}
rules:
"""


def test_unreachable_target_outside_the_catalog_and_outside_the_target_shape() -> None:
    text = (
        CATALOG
        + """\
  - id: typo-action
    decision: deny
    match: {targets: ["adapter:bank:send_mony"]}
  - id: no-such-shape
    decision: deny
    match: {targets: ["tool:**"]}
"""
    )
    found = {f.rules[0]: f for f in findings(text)}
    assert found["typo-action"].kind == "unreachable" and found["typo-action"].lines == (7,)
    assert "lists no such action" in found["typo-action"].why
    assert found["no-such-shape"].kind == "unreachable"


def test_catalog_warning_for_an_unlisted_adapter_and_one_dead_target() -> None:
    text = (
        CATALOG
        + """\
  - id: unlisted
    decision: deny
    match: {targets: ["adapter:bnak:send_money"]}
  - id: half
    decision: deny
    match: {targets: ["adapter:bank:send_money", "adapter:bank:refund"]}
"""
    )
    found = {f.rules[0]: f for f in findings(text) if f.kind == "catalog"}
    assert found["unlisted"].severity == "warning" and "`bnak`" in found["unlisted"].why
    assert found["half"].severity == "warning" and "adapter:bank:refund" in found["half"].why
    assert not [f for f in findings(text) if f.kind == "unreachable"]


def test_catalog_effects_make_rules_disjoint() -> None:
    text = (
        CATALOG
        + """\
  - id: allow-reads
    decision: allow
    match: {targets: ["adapter:*:*"]}
    conditions: [{eq: {effect: read}}]
  - id: deny-send
    decision: deny
    match: {targets: ["adapter:bank:send_money"]}
"""
    )
    assert findings(text) == []


REMEDIATION = """\
version: 1
default_decision: allow
rules:
  - id: deny-prod-apply
    decision: deny
    match: {topics: ["job.deploy.apply"], labels: {env: [prod]}}
    remediations:
      - id: plan-instead
        set: {topic: job.deploy.plan}
      - id: staging
        set_labels: {env: staging}
      - id: same-again
        set: {capability: infra.write}
  - id: deny-plans
    decision: deny
    match: {topics: ["job.deploy.plan"]}
"""


def test_remediation_denied_again() -> None:
    found = [f for f in findings(REMEDIATION) if f.kind == "remediation_denied"]
    by_rem = {f.details["remediation"]: f for f in found}
    assert set(by_rem) == {"plan-instead", "same-again"}
    f = by_rem["plan-instead"]
    assert (f.severity, f.rules, f.lines) == ("error", ("deny-prod-apply", "deny-plans"), (4, 14))
    assert "`deny-plans` denies again" in f.why
    assert by_rem["same-again"].severity == "error"  # denied again by the same rule


def test_approval_without_ttl_only_under_a_long_default() -> None:
    text = """\
version: 1
rules:
  - id: approve
    decision: require_approval
    match: {topics: ["job.x"]}
  - id: approve-bounded
    decision: require_approval
    match: {topics: ["job.y"]}
    approval_ttl: 10m
"""
    assert findings(text) == []  # the service's 15-minute default is not long
    f = only(text, "approval_ttl", approval_default=86400)
    assert (f.severity, f.rules, f.lines) == ("warning", ("approve",), (3,))
    assert "1d" in f.why


def test_a_clean_bundle_has_no_findings() -> None:
    assert findings("version: 1\nrules: []\n") == []


# The warnings of the shipped bundles, each read and kept on purpose (docs/policy-rollout.md says
# why): an exception carved out of a broad allow, or a deny that takes precedence where a
# stricter reading applies. Anything new here fails the test until it is judged.
KEPT = {
    "seed.yaml": {
        (
            "conflict",
            ("deny-destructive-exec", "require-approval-prod-write", "require-approval-prod-undeclared"),
        ),
    },
    "steps.yaml": {
        ("conflict", ("deny-untrusted-payee", "allow-send-money", "approve-payment-after-untrusted-read")),
        ("conflict", ("approve-payment-after-untrusted-read", "allow-send-money")),
        ("conflict", ("approve-external-mail", "allow-mail")),
    },
    "adapters.yaml": {
        ("conflict", ("deny-untrusted-payee", "approve-writes")),
    },
    "assistant.yaml": {
        ("conflict", ("deny-payee-from-untrusted-content", "approve-payment-over-limit")),
        ("conflict", ("deny-payment-details-outside", "allow-mail-to-company-or-task-recipients")),
        ("reason_order", ("deny-recipient-from-untrusted-content", "deny-payment-details-outside")),
    },
}
# `hardened.yaml` is written as "allow unless a stricter rule applies": every deny and approval
# is an exception over a broad allow, and several denies may hold at once. Its warnings are all of
# these two kinds, and every rule they name that loses is an allow or an approval.
ALLOW_UNLESS = {"hardened.yaml"}


@pytest.mark.parametrize("path", sorted((REPO / "examples").rglob("*.yaml")), ids=lambda p: p.name)
def test_shipped_bundles_lint_without_errors(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    if path.name.endswith(".tests.yaml"):
        pytest.skip("fixtures, not a bundle")
    found = lint(load(text))
    assert [f for f in found if f.severity == "error"] == []
    if path.name in ALLOW_UNLESS:
        assert {f.kind for f in found} <= {"conflict", "reason_order"}
        rules = {r.id: r for r in load(text).rules}
        for f in found:
            if f.kind == "conflict":
                assert rules[f.rules[0]].decision != "allow"
                assert all(rules[r].decision != "deny" for r in f.rules[1:])
    elif path.parent.name == "policies":
        assert {(f.kind, f.rules) for f in found} == KEPT.get(path.name, set())

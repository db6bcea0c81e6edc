"""Decisions and explanations: what `Policy.decide` / `explain` answer for a request context."""

from __future__ import annotations

import itertools
import textwrap
from collections.abc import Mapping
from typing import Any

import pytest

import gatehouse.policy as gp
from gatehouse.policy import EvaluationError


def policy(rules: str, *, default: str | None = "allow", extra: str = "") -> gp.Policy:
    head = "version: 1\nname: t\n"
    if default is not None:
        head += f"default_decision: {default}\n"
    body = textwrap.indent(textwrap.dedent(rules).strip("\n"), "  ")
    return gp.load(head + textwrap.dedent(extra).lstrip("\n") + "rules:\n" + body + "\n")


def verdict(p: gp.Policy, ctx: Mapping[str, Any]) -> tuple[str, str]:
    """(decision, rule id), checked to be the same by every evaluation path."""
    d = p.decide(ctx)
    assert p.scan(ctx) == d
    assert p.explain(ctx).decision == d
    return d.decision, d.rule_id


def matches(p: gp.Policy, ctx: Mapping[str, Any]) -> bool:
    """Whether the single rule `r` of `p` (default allow, rule deny) matches `ctx`."""
    decision, rule_id = verdict(p, ctx)
    assert (decision == "deny") == (rule_id == "r")
    return rule_id == "r"


def one_rule(match: str = "", conditions: str = "") -> gp.Policy:
    text = "- id: r\n  decision: deny\n"
    if match:
        text += "  match:\n" + textwrap.indent(textwrap.dedent(match).strip("\n"), "    ") + "\n"
    if conditions:
        text += "  conditions:\n" + textwrap.indent(textwrap.dedent(conditions).strip("\n"), "    ") + "\n"
    return policy(text)


# ---------------------------------------------------------------------------------------------
# The seed policy: the two rules of the original brief.

DESTRUCTIVE = {"topic": "job.exec.shell", "labels": {"command_class": "destructive"}}
PROD_WRITE = {"topic": "job.deploy.apply", "labels": {"env": "prod"}, "capability": "infra.write"}


def test_seed_denies_destructive_exec(seed: gp.Policy) -> None:
    d = seed.decide(DESTRUCTIVE)
    assert (d.decision, d.rule_id) == ("deny", "deny-destructive-exec")
    assert d.reason == "destructive command class blocked"
    assert not d.allowed
    assert [r.id for r in d.remediations] == ["dry-run"]
    # The remediation is the rule's, as written in the seed bundle.
    assert d.remediations == seed.rules[0].remediations
    assert gp.is_valid_topic(d.remediations[0].set["topic"])
    assert d.approval_ttl is None


def test_seed_requires_approval_for_prod_writes(seed: gp.Policy) -> None:
    d = seed.decide(PROD_WRITE)
    assert (d.decision, d.rule_id) == ("require_approval", "require-approval-prod-write")
    assert d.reason == "production writes need a human approval"
    assert d.approval_ttl == 900
    assert [r.id for r in d.remediations] == ["plan-instead", "staging-first"]
    assert d.remediations == seed.rules[1].remediations
    assert d.to_dict()["remediations"][1]["set_labels"] == {"env": "staging"}
    assert d.to_dict()["approval_ttl"] == 900


def test_seed_allows_everything_else_by_default(seed: gp.Policy) -> None:
    d = seed.decide({"topic": "job.demo.read"})
    assert (d.decision, d.rule_id) == ("allow", "default")
    assert d.allowed
    assert d.remediations == ()
    assert "default_decision is allow" in d.reason


@pytest.mark.parametrize(
    ("ctx", "want"),
    [
        (DESTRUCTIVE, ("deny", "deny-destructive-exec")),
        ({**PROD_WRITE, "approved": True}, ("allow", "default")),
        ({**PROD_WRITE, "approved": False}, ("require_approval", "require-approval-prod-write")),
        ({**PROD_WRITE, "labels": {"env": "staging"}}, ("allow", "default")),
        ({**PROD_WRITE, "capability": "infra.read"}, ("allow", "default")),
        # The approval rule has no topics: it applies to any topic.
        (
            {**PROD_WRITE, "topic": "job.anything.else"},
            ("require_approval", "require-approval-prod-write"),
        ),
        ({**PROD_WRITE, "topic": None}, ("require_approval", "require-approval-prod-write")),
        ({"topic": "job.exec.shell", "labels": {"command_class": "safe"}}, ("allow", "default")),
        ({"topic": "job.exec.shell"}, ("allow", "default")),
        (
            {"topic": "job.exec.shell.bash", "labels": {"command_class": "destructive"}},
            ("allow", "default"),
        ),
        ({"topic": "job.exec", "labels": {"command_class": "destructive"}}, ("allow", "default")),
        ({"labels": {"command_class": "destructive"}}, ("allow", "default")),
        # Both rules match: deny is more restrictive than require_approval.
        (
            {
                "topic": "job.exec.shell",
                "labels": {"command_class": "destructive", "env": "prod"},
                "capability": "infra.write",
            },
            ("deny", "deny-destructive-exec"),
        ),
        ({}, ("allow", "default")),
    ],
)
def test_seed_table(seed: gp.Policy, ctx: dict[str, Any], want: tuple[str, str]) -> None:
    assert verdict(seed, ctx) == want


# ---------------------------------------------------------------------------------------------
# Combining: most restrictive wins, ties to the first listed, default otherwise.

_THREE = {
    "a": "- id: a\n  decision: allow\n  match: {topics: ['job.**']}\n",
    "r": "- id: r\n  decision: require_approval\n  match: {topics: ['job.x.*']}\n",
    "d": "- id: d\n  decision: deny\n  match: {topics: ['job.x.y']}\n",
}


@pytest.mark.parametrize("order", list(itertools.permutations("ard")))
def test_most_restrictive_wins_regardless_of_order(order: tuple[str, ...]) -> None:
    p = policy("".join(_THREE[k] for k in order), default="deny")
    assert verdict(p, {"topic": "job.x.y"}) == ("deny", "d")
    assert verdict(p, {"topic": "job.x.z"}) == ("require_approval", "r")
    assert verdict(p, {"topic": "job.q"}) == ("allow", "a")
    assert verdict(p, {"topic": "other"}) == ("deny", "default")


@pytest.mark.parametrize("decision", ["allow", "deny", "require_approval"])
def test_ties_go_to_the_rule_listed_first(decision: str) -> None:
    rules = "".join(
        f"- id: {rid}\n  decision: {decision}\n  reason: '{rid} wins'\n  match: {m}\n"
        for rid, m in [
            ("by-capability", "{capabilities: [c]}"),
            ("by-topic", "{topics: ['job.*']}"),
            ("everywhere", "{}"),
            ("by-label", "{labels: {env: prod}}"),
        ]
    )
    p = policy(rules, default="allow" if decision != "allow" else "deny")
    full = {"topic": "job.a", "capability": "c", "labels": {"env": "prod"}}
    assert verdict(p, full) == (decision, "by-capability")
    assert p.decide(full).reason == "by-capability wins"
    assert verdict(p, {"topic": "job.a", "labels": {"env": "prod"}}) == (decision, "by-topic")
    assert verdict(p, {"labels": {"env": "prod"}}) == (decision, "everywhere")


def test_a_later_more_restrictive_rule_beats_an_earlier_one() -> None:
    p = policy(
        """
        - id: early-allow
          decision: allow
        - id: late-approval
          decision: require_approval
          match: {tenants: [acme]}
        """,
        default="deny",
    )
    assert verdict(p, {"tenant": "acme"}) == ("require_approval", "late-approval")
    assert verdict(p, {"tenant": "other"}) == ("allow", "early-allow")


@pytest.mark.parametrize(("default", "want"), [(None, "deny"), ("deny", "deny"), ("allow", "allow")])
def test_no_match_gives_default_decision_and_omitted_means_deny(default: str | None, want: str) -> None:
    p = policy("- id: r\n  decision: allow\n  match: {topics: [job.x]}\n", default=default)
    d = p.decide({"topic": "job.y"})
    assert (d.decision, d.rule_id) == (want, "default")
    assert p.default_decision == want


def test_an_empty_policy_denies_everything() -> None:
    p = gp.load("version: 1\n")
    for ctx in ({}, {"topic": "job.x"}, {"topic": "job.x", "approved": True}):
        assert verdict(p, ctx) == ("deny", "default")


def test_require_approval_as_default() -> None:
    p = policy("- id: r\n  decision: allow\n  match: {topics: [job.read]}\n", default="require_approval")
    assert verdict(p, {"topic": "job.read"}) == ("allow", "r")
    assert verdict(p, {"topic": "job.write"}) == ("require_approval", "default")


# ---------------------------------------------------------------------------------------------
# Match fields.


@pytest.mark.parametrize(
    ("topic", "hit"),
    [
        ("job.exec.shell", True),
        ("job.exec.shell.bash", False),
        ("job.exec", False),
        ("job.db.read", True),
        ("job.db.restore", True),
        ("job.db.write", False),
        ("audit.x", True),
        ("audit.x.y.z", True),
        ("audit", False),
        ("audits.x", False),
        ("job.deploy.apply", True),
        ("job.deploy.plan", False),
        ("exact.topic", True),
        ("exact.topic.x", False),
        (None, False),
    ],
)
def test_topics_any_pattern_matches(topic: str | None, hit: bool) -> None:
    p = one_rule("topics: ['job.exec.*', 'job.db.re*', 'audit.**', 'job.*.apply', 'exact.topic']")
    ctx = {} if topic is None else {"topic": topic}
    assert matches(p, ctx) is hit


def test_a_non_string_topic_matches_no_topic_rule() -> None:
    p = one_rule("topics: ['**']")
    assert matches(p, {"topic": "anything"})
    assert not matches(p, {"topic": 5})
    assert not matches(p, {})


@pytest.mark.parametrize(
    ("labels", "hit"),
    [
        ({"env": "prod", "tier": "web"}, True),
        ({"env": "staging", "tier": "db", "extra": "x"}, True),
        ({"env": "dev", "tier": "web"}, False),
        ({"env": "prod"}, False),  # every key must be present
        ({"tier": "web"}, False),
        ({}, False),
        (None, False),
        ({"env": "PROD", "tier": "web"}, False),  # case-sensitive
    ],
)
def test_labels_every_key_with_any_of_lists(labels: dict[str, str] | None, hit: bool) -> None:
    p = one_rule("labels: {env: [prod, staging], tier: [web, db]}")
    ctx: dict[str, Any] = {"topic": "job.x"}
    if labels is not None:
        ctx["labels"] = labels
    assert matches(p, ctx) is hit


def test_numeric_label_values_in_a_rule_match_string_labels() -> None:
    p = one_rule("labels: {port: 443}")
    assert matches(p, {"labels": {"port": "443"}})
    assert not matches(p, {"labels": {"port": "80"}})


@pytest.mark.parametrize(
    ("field", "key", "good", "bad"),
    [
        ("capabilities", "capability", "infra.write", "infra.read"),
        ("tenants", "tenant", "acme", "globex"),
        ("requester_roles", "requester_role", "agent", "platform-admin"),
    ],
)
def test_one_of_fields(field: str, key: str, good: str, bad: str) -> None:
    p = one_rule(f"{field}: [{good}, other]")
    assert matches(p, {key: good})
    assert matches(p, {key: "other"})
    assert not matches(p, {key: bad})
    assert not matches(p, {})
    assert not matches(p, {key: None})
    assert not matches(p, {key: ""})
    # A list-valued field matches when any item does, in the index and in the scan alike.
    assert matches(p, {key: [bad, good]})
    assert not matches(p, {key: [bad]})


@pytest.mark.parametrize(
    ("tags", "hit"),
    [
        (["change"], True),
        (["read", "money"], True),
        (["change", "money"], True),
        (["read"], False),
        ([], False),
        (None, False),
        (("change",), True),
        ({"money"}, True),
    ],
)
def test_risk_tags_at_least_one(tags: list[str] | None, hit: bool) -> None:
    p = one_rule("risk_tags: [change, money]")
    ctx = {} if tags is None else {"risk_tags": tags}
    assert matches(p, ctx) is hit


def test_every_match_field_must_hold() -> None:
    p = one_rule(
        """
        topics: ['job.deploy.*']
        labels: {env: prod}
        capabilities: [infra.write]
        tenants: [acme]
        risk_tags: [change]
        requester_roles: [agent]
        """
    )
    full = {
        "topic": "job.deploy.apply",
        "labels": {"env": "prod"},
        "capability": "infra.write",
        "tenant": "acme",
        "risk_tags": ["change"],
        "requester_role": "agent",
    }
    assert matches(p, full)
    for key in full:
        assert not matches(p, {k: v for k, v in full.items() if k != key}), key
    for key, wrong in [
        ("topic", "job.deploy.apply.x"),
        ("labels", {"env": "dev"}),
        ("capability", "infra.read"),
        ("tenant", "globex"),
        ("risk_tags", ["read"]),
        ("requester_role", "human"),
    ]:
        assert not matches(p, {**full, key: wrong}), key


# ---------------------------------------------------------------------------------------------
# Conditions.


@pytest.mark.parametrize(
    ("condition", "ctx", "hit"),
    [
        # not (shorthand inside): absent approval is "not approved".
        ("- not: {approved: true}", {}, True),
        ("- not: {approved: true}", {"approved": False}, True),
        ("- not: {approved: true}", {"approved": True}, False),
        # `approved: 1` is not `true` (bool is an int in Python, not in the policy language).
        ("- not: {approved: true}", {"approved": 1}, True),
        ("- {approved: true}", {"approved": 1}, False),
        ("- {approved: true}", {"approved": True}, True),
        ("- {approved: false}", {"approved": 0}, False),
        ("- {approved: false}", {}, False),  # absent equals nothing, not even false
        ("- in: {approved: [true]}", {"approved": 1}, False),
        ("- in: {approved: [true]}", {"approved": True}, True),
        ("- not_in: {approved: [true]}", {"approved": 1}, True),
        ("- eq: {approved: 1}", {"approved": True}, False),
        ("- eq: {approved: 1}", {"approved": 1}, True),
        # eq
        ("- eq: {tenant: acme}", {"tenant": "acme"}, True),
        ("- eq: {tenant: acme}", {"tenant": "globex"}, False),
        ("- eq: {tenant: acme}", {}, False),
        ("- eq: {tenant: acme, capability: x}", {"tenant": "acme", "capability": "x"}, True),
        ("- eq: {tenant: acme, capability: x}", {"tenant": "acme", "capability": "y"}, False),
        ("- eq: {risk_tags: change}", {"risk_tags": ["read", "change"]}, True),
        ("- eq: {risk_tags: change}", {"risk_tags": ["read"]}, False),
        ("- eq: {topic: job.x}", {"topic": "job.x"}, True),
        # in / not_in
        ("- in: {requester_role: [agent, bot]}", {"requester_role": "bot"}, True),
        ("- in: {requester_role: [agent, bot]}", {"requester_role": "human"}, False),
        ("- in: {requester_role: [agent, bot]}", {}, False),
        ("- in: {tenant: acme}", {"tenant": "acme"}, True),
        ("- in: {risk_tags: [pii, money]}", {"risk_tags": ["read", "money"]}, True),
        ("- in: {risk_tags: [pii, money]}", {"risk_tags": ["read"]}, False),
        ("- not_in: {requester_role: [platform-admin]}", {"requester_role": "agent"}, True),
        (
            "- not_in: {requester_role: [platform-admin]}",
            {"requester_role": "platform-admin"},
            False,
        ),
        ("- not_in: {requester_role: [platform-admin]}", {}, True),  # absent is not in the list
        # all / any
        ("- all: [{tenant: acme}, {not: {approved: true}}]", {"tenant": "acme"}, True),
        (
            "- all: [{tenant: acme}, {not: {approved: true}}]",
            {"tenant": "acme", "approved": True},
            False,
        ),
        ("- any: [{tenant: acme}, {capability: x}]", {"capability": "x"}, True),
        ("- any: [{tenant: acme}, {capability: x}]", {"capability": "y"}, False),
        ("- any: [{tenant: acme}, {capability: x}]", {}, False),
        ("- not: {any: [{tenant: acme}, {capability: x}]}", {}, True),
        ("- not: {not: {tenant: acme}}", {"tenant": "acme"}, True),
        # labels.<key>
        ("- {labels.env: prod}", {"labels": {"env": "prod"}}, True),
        ("- {labels.env: prod}", {"labels": {"env": "dev"}}, False),
        ("- {labels.env: prod}", {"labels": {}}, False),
        ("- {labels.env: prod}", {}, False),
        ("- in: {labels.env: [prod, staging]}", {"labels": {"env": "staging"}}, True),
        ("- not_in: {labels.env: [prod]}", {}, True),
        ("- not: {labels.env: prod}", {"labels": {"team": "x"}}, True),
        # Several conditions: all must hold.
        ("- {tenant: acme}\n- {capability: x}", {"tenant": "acme", "capability": "x"}, True),
        ("- {tenant: acme}\n- {capability: x}", {"tenant": "acme"}, False),
    ],
)
def test_conditions(condition: str, ctx: dict[str, Any], hit: bool) -> None:
    assert matches(one_rule(conditions=condition), ctx) is hit


def test_conditions_combine_with_match() -> None:
    p = one_rule(match="topics: ['job.deploy.*']", conditions="- not: {approved: true}")
    assert matches(p, {"topic": "job.deploy.apply"})
    assert not matches(p, {"topic": "job.deploy.apply", "approved": True})
    assert not matches(p, {"topic": "job.read"})


# ---------------------------------------------------------------------------------------------
# Fail modes and the fields a policy reads.


def test_fail_mode_for_with_overrides(seed: gp.Policy) -> None:
    assert seed.fail_mode_for("job.demo.read") == "open"
    assert seed.fail_mode_for("job.demo.x.y") == "open"
    assert seed.fail_mode_for("job.demo") == "closed"
    assert seed.fail_mode_for("job.exec.shell") == "closed"
    assert seed.fail_mode_for(None) == "closed"
    assert seed.fail_mode_for("") == "closed"


def test_fail_mode_first_matching_override_wins() -> None:
    p = gp.load(
        textwrap.dedent(
            """
            version: 1
            fail_mode: open
            fail_mode_overrides:
              - topics: ["job.pay.**"]
                fail_mode: closed
              - topics: ["job.**"]
                fail_mode: open
              - topics: ["job.pay.refund"]
                fail_mode: open
            """
        )
    )
    assert p.fail_mode_for("job.pay.refund") == "closed"
    assert p.fail_mode_for("job.other") == "open"
    assert p.fail_mode_for("elsewhere") == "open"


def test_fail_mode_defaults_to_closed() -> None:
    p = gp.load("version: 1\n")
    assert p.fail_mode == "closed"
    assert p.fail_mode_for("job.x") == "closed"


def test_policy_fields(seed: gp.Policy) -> None:
    assert seed.fields == frozenset({"topic", "labels.command_class", "labels.env", "capability", "approved"})
    p = one_rule(
        match="tenants: [a]\nrisk_tags: [b]\nrequester_roles: [c]",
        conditions="- any: [{labels.team: x}, {not: {eq: {topic: y}}}]",
    )
    assert p.fields == frozenset({"tenant", "risk_tags", "requester_role", "labels.team", "topic"})
    assert gp.load("version: 1\n").fields == frozenset()


def test_rule_and_remediation_lookup(seed: gp.Policy) -> None:
    assert seed.rule("deny-destructive-exec") is seed.rules[0]
    assert seed.rule("nope") is None
    rem = seed.remediation("require-approval-prod-write", "staging-first")
    assert rem is not None and dict(rem.set_labels) == {"env": "staging"}
    assert seed.remediation("require-approval-prod-write", "nope") is None
    assert seed.remediation("nope", "dry-run") is None


def test_audit_flag_is_carried_on_the_decision() -> None:
    p = policy(
        """
        - id: quiet
          decision: allow
          audit: false
        - id: loud
          decision: deny
          match: {tenants: [x]}
        """
    )
    assert p.decide({}).audit is False
    assert p.decide({"tenant": "x"}).audit is True


# ---------------------------------------------------------------------------------------------
# Explain.

_EXPLAIN = """
- id: exec-topic
  decision: deny
  match: {topics: ['job.exec.*']}
- id: prod-label
  decision: require_approval
  match:
    topics: ['job.**']
    labels: {env: prod}
- id: write-cap
  decision: require_approval
  match: {capabilities: [infra.write]}
- id: unapproved
  decision: require_approval
  conditions:
    - not: {approved: true}
- id: allow-all
  decision: allow
"""


def test_explain_lists_every_rule_with_the_first_failed_field() -> None:
    p = policy(_EXPLAIN, default="deny")
    ex = p.explain({"topic": "job.deploy.apply", "labels": {"env": "dev"}, "approved": True})
    assert [(t.rule_id, t.decision, t.matched, t.failed_field) for t in ex.rules] == [
        ("exec-topic", "deny", False, "topics"),
        ("prod-label", "require_approval", False, "labels.env"),
        ("write-cap", "require_approval", False, "capabilities"),
        ("unapproved", "require_approval", False, "conditions[0]"),
        ("allow-all", "allow", True, None),
    ]
    assert ex.winner == "allow-all"
    assert ex.decision == p.decide({"topic": "job.deploy.apply", "labels": {"env": "dev"}, "approved": True})
    assert "`allow-all` is the only matching rule" in ex.why
    assert ex.snapshot == p.snapshot


def test_explain_names_the_winner_among_several_matches() -> None:
    p = policy(_EXPLAIN, default="deny")
    ctx = {"topic": "job.deploy.apply", "labels": {"env": "prod"}, "capability": "infra.write"}
    ex = p.explain(ctx)
    assert [t.rule_id for t in ex.rules if t.matched] == [
        "prod-label",
        "write-cap",
        "unapproved",
        "allow-all",
    ]
    assert ex.winner == "prod-label"
    assert ex.decision == p.decide(ctx)
    assert ex.decision.decision == "require_approval"
    assert "`require_approval` is the most restrictive" in ex.why
    assert "`prod-label` is listed first of the 3 rules" in ex.why


def test_explain_most_restrictive_reason_without_a_tie() -> None:
    p = policy(_EXPLAIN, default="deny")
    ex = p.explain({"topic": "job.exec.shell"})
    assert ex.winner == "exec-topic"
    assert ex.decision.decision == "deny"
    assert "`deny` is the most restrictive" in ex.why
    assert "listed first" not in ex.why


def test_explain_default() -> None:
    p = policy("- id: r\n  decision: deny\n  match: {topics: [job.x]}\n", default="allow")
    ex = p.explain({"topic": "job.y"})
    assert ex.winner == "default"
    assert ex.decision.rule_id == "default"
    assert [(t.rule_id, t.matched, t.failed_field) for t in ex.rules] == [("r", False, "topics")]
    assert "no rule matched" in ex.why and "`allow`" in ex.why


def test_explain_to_dict(seed: gp.Policy) -> None:
    data = seed.explain(PROD_WRITE).to_dict()
    assert data["winner"] == "require-approval-prod-write"
    assert data["decision"]["decision"] == "require_approval"
    assert data["policy_snapshot"] == seed.snapshot
    assert data["rules"] == [
        {
            "rule_id": "deny-destructive-exec",
            "decision": "deny",
            "matched": False,
            "failed_field": "topics",
        },
        {
            "rule_id": "require-approval-prod-write",
            "decision": "require_approval",
            "matched": True,
            "failed_field": None,
        },
        {
            "rule_id": "require-approval-prod-undeclared",
            "decision": "require_approval",
            "matched": False,
            "failed_field": "conditions[0]",
        },
    ]


@pytest.mark.parametrize(
    "ctx",
    [DESTRUCTIVE, PROD_WRITE, {**PROD_WRITE, "approved": True}, {"topic": "job.demo.read"}, {}],
)
def test_explain_decision_equals_decide(seed: gp.Policy, ctx: dict[str, Any]) -> None:
    assert seed.explain(ctx).decision == seed.decide(ctx) == seed.scan(ctx)


# ---------------------------------------------------------------------------------------------
# Malformed contexts: an EvaluationError (the kernel then applies the fail mode), never TypeError.


@pytest.mark.parametrize(
    "ctx",
    [
        {"topic": "job.exec.shell", "labels": ["command_class", "destructive"]},
        {"topic": "job.demo.read", "labels": ["x"]},  # raised whichever rules the index picks
        {"topic": "job.demo.read", "labels": "env=prod"},
        {"topic": "job.demo.read", "risk_tags": "change"},
        {"topic": "job.demo.read", "risk_tags": 5},
        {"topic": "job.exec.shell", "labels": {"command_class": ["destructive"]}},  # unhashable
    ],
)
def test_bad_context_types_raise_evaluation_error(seed: gp.Policy, ctx: dict[str, Any]) -> None:
    p = policy(
        _EXPLAIN
        + "- id: tags\n  decision: deny\n  match: {risk_tags: [change]}\n"
        + "- id: by-label\n  decision: deny\n  match: {labels: {command_class: destructive}}\n"
    )
    for pol in (seed, p):
        for method in (pol.decide, pol.scan, pol.explain):
            with pytest.raises(EvaluationError) as info:
                method(ctx)
            assert info.value.code == "policy_evaluation_error"
            assert not isinstance(info.value, TypeError)


def test_a_context_that_is_not_a_mapping_raises_evaluation_error(seed: gp.Policy) -> None:
    for bad in (None, ["topic", "job.x"], "job.x"):
        with pytest.raises(EvaluationError):
            seed.decide(bad)  # type: ignore[arg-type]


def test_none_valued_fields_mean_absent(seed: gp.Policy) -> None:
    ctx = {"topic": None, "labels": None, "risk_tags": None, "capability": None, "approved": None}
    assert verdict(seed, ctx) == ("allow", "default")

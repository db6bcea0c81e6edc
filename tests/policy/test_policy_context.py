"""The context each stage's rules may compare, declared once (`JOB_CONTEXT`, `STEP_CONTEXT`).

The loader refuses a condition on a field the rule's stage does not declare, with its line;
`params.<path>` reads nested mappings as `labels.<key>` reads one label; the compiler files rules
under whatever they compare, job fields or not.
"""

from __future__ import annotations

import textwrap

import pytest

import gatehouse.policy as gp
from gatehouse.errors import PolicyError
from gatehouse.policy.compiler import ABSENT, field_getter
from gatehouse.policy.model import CONTEXTS, JOB_CONTEXT, STEP_CONTEXT


def load(text: str) -> gp.Policy:
    return gp.load(textwrap.dedent(text))


def load_error(text: str) -> PolicyError:
    with pytest.raises(PolicyError) as info:
        load(text)
    return info.value


# -- the declared schemas ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["topic", "tenant", "labels.env", "labels.app.kubernetes.io/name", "capability", "risk_tags",
             "requester_role", "approved"],
)  # fmt: skip
def test_job_fields_are_declared_for_both_stages(name: str) -> None:
    assert JOB_CONTEXT.declares(name)
    assert STEP_CONTEXT.declares(name)


@pytest.mark.parametrize(
    "name",
    ["target", "adapter", "action", "effect", "detected", "params.amount", "params.to.domain",
     "session.untrusted_read", "session.step_count"],
)  # fmt: skip
def test_step_fields_are_declared_for_steps_only(name: str) -> None:
    assert STEP_CONTEXT.declares(name)
    assert not JOB_CONTEXT.declares(name)


@pytest.mark.parametrize(
    "name", ["labels", "params", "session", "params.", "params..x", "params.a b", "prompt", ""]
)
def test_malformed_or_unknown_fields_are_declared_nowhere(name: str) -> None:
    assert not any(schema.declares(name) for schema in CONTEXTS.values())


# -- the loader ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "field", "stage"),
    [
        (  # a job rule cannot compare a tool call's params
            """\
            rules:
              - id: a
                decision: deny
                conditions:
                  - eq: {tenant: acme}
                  - eq: {params.amount: 100}
            """,
            6,
            "params.amount",
            "job",
        ),
        (
            """\
            rules:
              - id: a
                decision: deny
                conditions: [{in: {adapter: [bank]}}]
            """,
            4,
            "adapter",
            "job",
        ),
        (  # a step rule reads params by path, never the whole mapping
            """\
            rules:
              - id: a
                target: adapter:bank:transfer
                decision: deny
                conditions:
                  - exists: params
            """,
            6,
            "params",
            "step",
        ),
        (
            """\
            rules:
              - id: a
                target: adapter:bank:transfer
                decision: deny
                conditions:
                  - not: {eq: {efect: write}}
            """,
            6,
            "efect",
            "step",
        ),
    ],
)
def test_a_field_the_stage_does_not_declare_is_refused_with_its_line(
    text: str, line: int, field: str, stage: str
) -> None:
    err = load_error(text)
    assert err.line == line, err.message
    assert err.rule_id == "a"
    assert f"unknown condition operator or field `{field}`" in err.message
    assert f"fields of a {stage} rule: " in err.message


def test_a_step_rule_may_compare_every_step_field() -> None:
    p = load(
        """\
        rules:
          - id: a
            target: adapter:bank:*
            decision: deny
            conditions:
              - in: {adapter: [bank], action: [transfer], effect: [write], detected: [iban]}
              - eq: {params.to.iban: x, session.untrusted_read: true, labels.env: prod}
              - exists: [params.amount, session.step_count, target, topic]
        """
    )
    assert p.rules[0].is_step


# -- params.<path> -------------------------------------------------------------------------------

PARAMS = """\
default_decision: allow
rules:
  - id: evil-recipient
    target: adapter:mail:send
    decision: deny
    conditions: [{eq: {params.to.domain: evil.example}}]
  - id: big
    target: adapter:bank:*
    decision: require_approval
    conditions: [{in: {params.payment.currency: [EUR, USD]}}, {exists: params.payment.amount}]
"""


@pytest.mark.parametrize(
    ("ctx", "rule_id"),
    [
        ({"target": "adapter:mail:send", "params": {"to": {"domain": "evil.example"}}}, "evil-recipient"),
        # On a list, `eq` holds only for every element (section 9; `contains` tests membership).
        (
            {"target": "adapter:mail:send", "params": {"to": {"domain": ["x", "evil.example"]}}},
            "default",
        ),
        (
            {"target": "adapter:mail:send", "params": {"to": {"domain": ["EVIL.example", "evil.example"]}}},
            "evil-recipient",
        ),
        ({"target": "adapter:mail:send", "params": {"to": {"domain": "corp.example"}}}, "default"),
        # Anything but a mapping on the way makes the path absent, never an error.
        ({"target": "adapter:mail:send", "params": {"to": "evil.example"}}, "default"),
        ({"target": "adapter:mail:send", "params": {"to": ["evil.example"]}}, "default"),
        ({"target": "adapter:mail:send", "params": "to.domain"}, "default"),
        ({"target": "adapter:mail:send"}, "default"),
        # A value no string equals (a nested mapping or list) is simply not one of them.
        ({"target": "adapter:mail:send", "params": {"to": {"domain": {"a": 1}}}}, "default"),
        ({"target": "adapter:bank:pay", "params": {"payment": {"currency": "EUR", "amount": 5}}}, "big"),
        (
            {"target": "adapter:bank:pay", "params": {"payment": {"currency": {"x": 1}, "amount": 5}}},
            "default",
        ),
        (
            {"target": "adapter:bank:pay", "params": {"payment": {"currency": [["EUR"]], "amount": 5}}},
            "default",
        ),
        (
            {"target": "adapter:bank:pay", "params": {"payment": {"currency": "EUR", "amount": None}}},
            "default",
        ),
    ],
)
def test_params_are_addressed_by_path_through_nested_mappings(ctx: dict, rule_id: str) -> None:
    p = load(PARAMS)
    assert p.decide(ctx).rule_id == rule_id
    assert p.scan(ctx).rule_id == rule_id
    assert p.explain(ctx).winner == rule_id


def test_field_getter_reads_labels_by_key_and_params_by_path() -> None:
    ctx = {"labels": {"app.kubernetes.io/name": "web"}, "params": {"a": {"b": 1}}, "tenant": "t"}
    assert field_getter("labels.app.kubernetes.io/name")(ctx) == "web"
    assert field_getter("params.a.b")(ctx) == 1
    assert field_getter("params.a")(ctx) == {"b": 1}
    assert field_getter("params.a.b.c")(ctx) is ABSENT
    assert field_getter("labels.env")(ctx) is ABSENT
    assert field_getter("tenant")(ctx) == "t"


def test_a_step_field_that_is_not_a_string_is_an_evaluation_error() -> None:
    p = load(PARAMS)
    with pytest.raises(gp.EvaluationError):
        p.decide({"target": "adapter:bank:pay", "adapter": {"name": "bank"}})


# -- the index keys come from the rules ----------------------------------------------------------


def test_rules_are_indexed_by_the_fields_they_compare() -> None:
    p = load(
        """\
        rules:
          - id: by-param
            target: "**"
            decision: deny
            conditions: [{eq: {params.bucket: prod-backups}}, {in: {action: [delete, purge]}}]
          - id: by-label
            decision: deny
            conditions: [{all: [{eq: {labels.region: eu}}]}]
          - id: everywhere
            decision: deny
            conditions: [{not: {approved: true}}]
        """
    )
    steps, jobs = p._step_index, p._index
    # A rule with a bare `**` target would be a candidate for every call: it is grouped by the
    # fields its conditions compare instead.
    assert steps.groups == {
        ("action", "params.bucket"): {("delete", "prod-backups"): [0], ("purge", "prod-backups"): [0]}
    }
    assert jobs.groups == {("labels.region",): {("eu",): [1]}}
    assert [p._by_rank[r].rule.id for r in jobs.always] == ["everywhere"]
    hit = {"target": "adapter:s3:delete", "action": "delete", "params": {"bucket": "prod-backups"}}
    assert list(steps.candidates(hit)) == [0]
    assert list(steps.candidates({**hit, "params": {"bucket": "scratch"}})) == []
    assert p.decide(hit).rule_id == "by-param"


def test_a_grouped_step_rule_still_checks_its_target() -> None:
    # `adapter:*:delete` has no literal prefix past `adapter`: the rule is grouped by
    # `params.bucket`, so the target glob is no longer guaranteed by the index and must be checked.
    p = load(
        """\
        default_decision: allow
        rules:
          - id: no-prod-deletes
            target: "adapter:*:delete"
            decision: deny
            conditions: [{eq: {params.bucket: prod}}]
        """
    )
    assert p._step_index.groups == {("params.bucket",): {("prod",): [0]}}
    prod = {"bucket": "prod"}
    assert p.decide({"target": "adapter:s3:delete", "params": prod}).rule_id == "no-prod-deletes"
    assert p.decide({"target": "adapter:s3:list", "params": prod}).rule_id == "default"

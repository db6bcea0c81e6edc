"""The seeds' rule form, step rules, `exists`, capability globs, `require` and the loader's
classifier check (DESIGN.md section 3; issue 12)."""

from __future__ import annotations

import textwrap

import pytest
import yaml

import gatehouse.policy as gp
from gatehouse.errors import PolicyError
from gatehouse.policy.canonical import canonical_data


def load(text: str) -> gp.Policy:
    return gp.load(textwrap.dedent(text))


def load_error(text: str) -> PolicyError:
    with pytest.raises(PolicyError) as info:
        gp.load(textwrap.dedent(text))
    return info.value


def same_rules(a: gp.Policy, b: gp.Policy) -> None:
    # Both spellings load to the same model (only the source line may differ).
    strip = [
        [r.__class__(**{**{f: getattr(r, f) for f in r.__slots__}, "line": None}) for r in p.rules]
        for p in (a, b)
    ]
    assert strip[0] == strip[1]


# -- the seeds' form -----------------------------------------------------------------------------

SEED_FORM = """\
rules:
  - id: block-prod-db-delete
    target: "adapter:db:delete_*"
    condition: {eq: {labels.env: prod}}
    action: deny
    audit: true
  - id: approve-payments
    target: ["adapter:bank:transfer", "adapter:bank:pay*"]
    condition:
      - exists: params.amount
      - not: {approved: true}
    action: require_approval
    reason: "payments need a human"
    audit: false
"""

CANONICAL_FORM = """\
version: 1
rules:
  - id: block-prod-db-delete
    decision: deny
    match: {targets: ["adapter:db:delete_*"]}
    conditions: [{eq: {labels.env: prod}}]
    audit: true
  - id: approve-payments
    decision: require_approval
    reason: "payments need a human"
    match: {targets: ["adapter:bank:transfer", "adapter:bank:pay*"]}
    conditions:
      - exists: params.amount
      - not: {approved: true}
    audit: false
"""


def test_a_document_without_version_is_version_1() -> None:
    p = load("rules: []\n")
    assert p.version == 1
    assert load("name: x\ndefault_decision: allow\n").decide({"topic": "job.a"}).decision == "allow"


def test_the_seed_form_and_the_canonical_form_load_to_the_same_rules() -> None:
    seed, canonical = load(SEED_FORM), load(CANONICAL_FORM)
    same_rules(seed, canonical)
    rule = seed.rules[1]
    assert rule.match.targets == ("adapter:bank:transfer", "adapter:bank:pay*")
    assert rule.decision == "require_approval" and rule.audit is False
    assert [c.op for c in rule.conditions] == ["exists", "not"]


def test_canonical_data_loads_back_to_the_same_rules() -> None:
    seed = load(SEED_FORM)
    again = gp.load(yaml.safe_dump(canonical_data(seed.bundle), sort_keys=False))
    same_rules(seed, again)
    data = canonical_data(seed.bundle)
    assert "action" not in data["rules"][0] and data["rules"][0]["decision"] == "deny"
    assert data["rules"][0]["match"] == {"targets": ["adapter:db:delete_*"]}


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        (
            "rules:\n  - id: a\n    action: deny\n    decision: deny\n",
            3,
            "give `action` or `decision`, not both",
        ),
        (
            "rules:\n  - id: a\n    action: deny\n    target: adapter:x:y\n"
            "    match: {targets: [adapter:x:z]}\n",
            4,
            "give `target` or `match.targets`, not both",
        ),
        (
            "rules:\n  - id: a\n    action: deny\n    target: github:list_*\n",
            4,
            "expected `adapter:<adapter>:<action>`",
        ),
        ("rules:\n  - id: a\n    action: nope\n", 3, "bad decision `nope`"),
        ("rules:\n  - id: a\n    action: deny\n    condition: {exists: params.x}\n", 4, "unknown condition"),
        ("rules:\n  - id: a\n    action: deny\n    targte: adapter:x:y\n", 4, "unknown key `targte`"),
    ],
)
def test_seed_form_errors_name_the_line(text: str, line: int, fragment: str) -> None:
    err = load_error(text)
    assert err.line == line, err.message
    assert fragment in err.message


# -- step rules and job rules --------------------------------------------------------------------

MIXED = """\
default_decision: allow
rules:
  - id: no-deletes
    target: "adapter:*:delete*"
    action: deny
  - id: step-catch-all
    target: "**"
    action: require_approval
  - id: jobs-in-prod
    decision: require_approval
    match: {labels: {env: prod}}
"""


def test_step_rules_never_decide_a_job() -> None:
    p = load(MIXED)
    # `step-catch-all` would match anything if it were looked at: a job must not see it.
    assert p.decide({"topic": "job.demo.read"}).rule_id == "default"
    assert p.scan({"topic": "job.demo.read"}).rule_id == "default"
    ex = p.explain({"topic": "job.demo.read", "labels": {"env": "prod"}})
    assert ex.winner == "jobs-in-prod"
    traces = {t.rule_id: t for t in ex.rules}
    assert traces["no-deletes"].failed_field == "targets"
    assert traces["step-catch-all"].failed_field == "targets"


def test_job_rules_never_decide_a_step() -> None:
    p = load(MIXED)
    step = {"target": "adapter:github:delete_repo", "labels": {"env": "prod"}}
    assert p.decide(step).rule_id == "no-deletes"
    other = {"target": "adapter:github:list_repos", "labels": {"env": "prod"}}
    assert p.decide(other).rule_id == "step-catch-all"
    assert p.scan(other).rule_id == "step-catch-all"
    traces = {t.rule_id: t for t in p.explain(other).rules}
    assert traces["jobs-in-prod"].failed_field == "targets"


def test_target_globs_split_on_colons_not_dots() -> None:
    p = load(
        """\
        rules:
          - id: github
            target: "adapter:github:*"
            action: deny
        """
    )
    assert p.decide({"target": "adapter:github:repos.list"}).rule_id == "github"
    assert p.decide({"target": "adapter:github:a:b"}).rule_id == "default"
    assert p.decide({"target": "adapter:gitlab:x"}).rule_id == "default"


def test_step_rule_conditions_read_params() -> None:
    p = load(
        """\
        default_decision: allow
        rules:
          - id: big-transfers
            target: adapter:bank:transfer
            condition: {in: {params.currency: [EUR, USD]}}
            action: require_approval
        """
    )
    assert (
        p.decide({"target": "adapter:bank:transfer", "params": {"currency": "EUR"}}).rule_id
        == "big-transfers"
    )
    assert p.decide({"target": "adapter:bank:transfer", "params": {"currency": "CHF"}}).rule_id == "default"
    assert p.decide({"target": "adapter:bank:transfer"}).rule_id == "default"


def test_a_target_must_be_a_string() -> None:
    with pytest.raises(gp.EvaluationError):
        load(MIXED).decide({"target": ["adapter:x:y"]})


# -- exists --------------------------------------------------------------------------------------

EXISTS = """\
default_decision: allow
rules:
  - id: undeclared
    decision: require_approval
    match: {labels: {env: prod}}
    conditions:
      - not: {exists: capability}
  - id: no-env
    decision: deny
    match: {topics: ["job.deploy.**"]}
    conditions:
      - not: {exists: labels.env}
"""


@pytest.mark.parametrize(
    ("ctx", "rule_id"),
    [
        ({"topic": "job.db.x", "labels": {"env": "prod"}}, "undeclared"),
        ({"topic": "job.db.x", "labels": {"env": "prod"}, "capability": None}, "undeclared"),
        ({"topic": "job.db.x", "labels": {"env": "prod"}, "capability": "db.write"}, "default"),
        ({"topic": "job.deploy.apply", "labels": {}}, "no-env"),
        ({"topic": "job.deploy.apply", "labels": {"env": None}}, "no-env"),
        ({"topic": "job.deploy.apply", "labels": {"env": "dev"}}, "default"),
    ],
)
def test_exists_tells_an_omitted_field_from_a_given_one(ctx: dict[str, object], rule_id: str) -> None:
    p = load(EXISTS)
    assert p.decide(ctx).rule_id == rule_id
    assert p.scan(ctx).rule_id == rule_id


def test_exists_round_trips_and_lists_mean_all() -> None:
    p = load("rules:\n  - id: a\n    decision: deny\n    conditions: [{exists: [capability, labels.env]}]\n")
    assert p.decide({"capability": "x"}).rule_id == "default"
    assert p.decide({"capability": "x", "labels": {"env": "prod"}}).rule_id == "a"
    assert p.rules[0].conditions[0].to_data() == {"all": [{"exists": "capability"}, {"exists": "labels.env"}]}


# -- capability globs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("patterns", "capability", "matched"),
    [
        (["db.*"], "db.write", True),
        (["db.*"], "db.write.all", False),
        (["db.**"], "db.write.all", True),
        (["*"], "infra.write", True),
        (["*"], None, False),
        (["db.re*"], "db.read", True),
        (["infra.write", "db.*"], "infra.write", True),
        (["infra.write", "db.*"], "exec", False),
    ],
)
def test_capability_globs_match_like_topic_globs(
    patterns: list[str], capability: str | None, matched: bool
) -> None:
    p = gp.load(
        yaml.safe_dump({"rules": [{"id": "cap", "decision": "deny", "match": {"capabilities": patterns}}]})
    )
    ctx = {"topic": "job.a", "capability": capability}
    assert (p.decide(ctx).rule_id == "cap") is matched
    assert (p.scan(ctx).rule_id == "cap") is matched
    assert (p.explain(ctx).rules[0].failed_field is None) is matched


def test_a_bad_capability_glob_is_a_load_error() -> None:
    err = load_error("rules:\n  - id: a\n    decision: deny\n    match: {capabilities: ['db..*']}\n")
    assert err.line == 4 and "bad glob `db..*`" in err.message


# -- require -------------------------------------------------------------------------------------

REQUIRE = """\
require:
  - topics: ["job.deploy.**"]
    fields: [meta.capability, labels.env]
  - topics: ["job.deploy.apply"]
    fields: [prompt, labels.env]
rules: []
"""


def test_missing_fields_names_every_field_a_job_lacks() -> None:
    p = load(REQUIRE)
    assert p.missing_fields("job.deploy.apply", {"prompt": "", "labels": {}, "meta": {}}) == [
        "meta.capability",
        "labels.env",
        "prompt",
    ]
    full = {"prompt": "terraform apply", "labels": {"env": "prod"}, "meta": {"capability": "infra.write"}}
    assert p.missing_fields("job.deploy.apply", full) == []
    assert p.missing_fields("job.deploy.plan", {"labels": {"env": "prod"}, "meta": {"capability": ""}}) == [
        "meta.capability"
    ]
    assert p.missing_fields("job.demo.read", {}) == []


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        (
            "require:\n  - topics: [job.a]\n    fields: [capability]\n",
            3,
            "unknown required field `capability`",
        ),
        ("require:\n  - topics: [job.a]\n", 2, "needs `topics` and `fields`"),
        ("require:\n  - topics: ['job..a']\n    fields: [prompt]\n", 2, "bad glob"),
        ("require:\n  - topics: [job.a]\n    fields: [prompt]\n    field: [x]\n", 4, "unknown key `field`"),
    ],
)
def test_require_errors_name_the_line(text: str, line: int, fragment: str) -> None:
    err = load_error(text)
    assert err.line == line, err.message
    assert fragment in err.message


def test_the_seed_refuses_a_deploy_without_capability_and_approves_undeclared_prod(seed: gp.Policy) -> None:
    assert seed.missing_fields("job.deploy.apply", {"labels": {"env": "prod"}, "meta": {}}) == [
        "meta.capability"
    ]
    d = seed.decide(
        {"topic": "job.db.migrate", "labels": {"env": "prod"}, "capability": None, "risk_tags": []}
    )
    assert (d.decision, d.rule_id) == ("require_approval", "require-approval-prod-undeclared")


# -- classifiers ---------------------------------------------------------------------------------


def test_a_classifier_regex_that_does_not_compile_is_a_load_error() -> None:
    err = load_error(
        "version: 1\nclassifiers:\n  - name: ok\n    regex: 'x'\n    risk_tag: x\n"
        "  - name: bad\n    regex: '(unclosed'\n    risk_tag: x\n"
    )
    assert err.line == 6, err.message
    assert "bad classifier pattern" in err.message


def test_the_bundle_classifier_is_compiled_at_load() -> None:
    p = load(
        """\
        classifiers:
          - name: drop-table
            regex: '(?i)\\bdrop\\s+table\\b'
            label: command_class
            value: destructive
        """
    )
    found = p.classifier.classify("please DROP TABLE users")
    assert found.labels["command_class"] == "destructive"

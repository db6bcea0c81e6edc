"""The loader: YAML/JSON text -> validated model, or a `PolicyError` naming the line and rule."""

from __future__ import annotations

import hashlib
import json
import textwrap

import pytest
import yaml

import gatehouse.policy as gp
from gatehouse.errors import GatehouseError, PolicyError


def _text(s: str) -> str:
    return textwrap.dedent(s).lstrip("\n")


def line_of(text: str, needle: str, nth: int = 1) -> int:
    """1-based line number of the `nth` line containing `needle`."""
    hits = [i for i, line in enumerate(text.splitlines(), start=1) if needle in line]
    assert len(hits) >= nth, f"{needle!r} not in text"
    return hits[nth - 1]


def load_error(text: str | bytes) -> PolicyError:
    with pytest.raises(PolicyError) as info:
        gp.load(text)
    return info.value


def rule_doc(rule_body: str, *, extra: str = "") -> str:
    """A valid bundle holding one good rule `first` and then the rule under test."""
    return (
        _text(
            """
            version: 1
            name: t
            rules:
              - id: first
                decision: allow
                match:
                  topics: ["job.ok"]
            """
        )
        + textwrap.indent(_text(rule_body), "  ")
        + _text(extra)
    )


# ---------------------------------------------------------------------------------------------
# Each kind of error: a PolicyError with the right line and rule id.

CASES = [
    # (name, text, needle on the line at fault, rule_id, message fragment)
    (
        "unknown top-level key",
        "version: 1\nname: t\nrulez: []\n",
        "rulez",
        None,
        "unknown key `rulez` in the policy",
    ),
    (
        "unknown rule key",
        rule_doc(
            """
            - id: typo
              decision: deny
              mathc:
                topics: ["job.x"]
            """
        ),
        "mathc",
        "typo",
        "unknown key `mathc` in a rule",
    ),
    (
        "unknown match key",
        rule_doc(
            """
            - id: bad-match
              decision: deny
              match:
                topics: ["job.x"]
                topic: "job.y"
            """
        ),
        "topic: ",
        "bad-match",
        "unknown key `topic` in `match`",
    ),
    (
        "duplicate rule id",
        rule_doc(
            """
            - id: dup
              decision: deny
            - id: dup
              decision: allow
            """
        ),
        ("id: dup", 2),
        "dup",
        "duplicate rule id `dup`",
    ),
    (
        "reserved rule id",
        rule_doc(
            """
            - id: default
              decision: deny
            """
        ),
        "id: default",
        "default",
        "`default` is reserved",
    ),
    (
        "bad decision",
        rule_doc(
            """
            - id: unsure
              reason: "who knows"
              decision: maybe
            """
        ),
        "decision: maybe",
        "unsure",
        "bad decision `maybe` (expected one of allow, deny, require_approval)",
    ),
    (
        "bad glob in a block list",
        rule_doc(
            """
            - id: globby
              decision: deny
              match:
                topics:
                  - job.ok
                  - job..x
            """
        ),
        "job..x",
        "globby",
        "bad glob `job..x`: empty segment",
    ),
    (
        "bad glob characters",
        rule_doc(
            """
            - id: dollar
              decision: deny
              match: {topics: ["job.$"]}
            """
        ),
        "job.$",
        "dollar",
        "bad glob `job.$`",
    ),
    (
        "triple star",
        rule_doc(
            """
            - id: stars
              decision: deny
              match: {topics: ["job.***"]}
            """
        ),
        "job.***",
        "stars",
        "`***` is not a wildcard",
    ),
    (
        "misspelt condition operator",
        rule_doc(
            """
            - id: cond
              decision: deny
              conditions:
                - not: {approved: true}
                - nott: {approved: true}
            """
        ),
        "nott",
        "cond",
        "unknown condition operator or field `nott`",
    ),
    (
        "unknown condition field",
        rule_doc(
            """
            - id: cond-field
              decision: deny
              conditions:
                - eq:
                    tenant: acme
                    aproved: true
            """
        ),
        "aproved",
        "cond-field",
        "unknown condition operator or field `aproved`",
    ),
    (
        "condition on the whole labels mapping",
        rule_doc(
            """
            - id: cond-labels
              decision: deny
              conditions:
                - {labels: prod}
            """
        ),
        "labels: prod",
        "cond-labels",
        "unknown condition operator or field `labels`",
    ),
    (
        "empty condition",
        rule_doc(
            """
            - id: cond-empty
              decision: deny
              conditions:
                - {}
            """
        ),
        "- {}",
        "cond-empty",
        "a condition must not be empty",
    ),
    (
        "empty any",
        rule_doc(
            """
            - id: cond-any
              decision: deny
              conditions:
                - any: []
            """
        ),
        "any: []",
        "cond-any",
        "`any` needs at least one condition",
    ),
    (
        "condition value a list for eq",
        rule_doc(
            """
            - id: cond-eq-list
              decision: deny
              conditions:
                - eq: {tenant: [a, b]}
            """
        ),
        "eq: {tenant",
        "cond-eq-list",
        "must be a scalar",
    ),
    (
        "labels value a mapping",
        rule_doc(
            """
            - id: lab
              decision: deny
              match:
                labels:
                  env: {name: prod}
            """
        ),
        "env: {name",
        "lab",
        "label `env` must be a list of strings",
    ),
    (
        "topics a number",
        rule_doc(
            """
            - id: num
              decision: deny
              match:
                topics: 5
            """
        ),
        "topics: 5",
        "num",
        "must be a string, got `5` (quote it)",
    ),
    (
        "empty topics list",
        rule_doc(
            """
            - id: empty-topics
              decision: deny
              match:
                topics: []
            """
        ),
        "topics: []",
        "empty-topics",
        "must not be empty (omit it to match anything)",
    ),
    (
        "audit not a boolean",
        rule_doc(
            """
            - id: aud
              decision: deny
              audit: "sometimes"
            """
        ),
        "audit:",
        "aud",
        "`audit` must be true or false, got `sometimes`",
    ),
    (
        "match not a mapping",
        rule_doc(
            """
            - id: match-list
              decision: deny
              match: [job.x]
            """
        ),
        "match: [",
        "match-list",
        "`match` must be a mapping",
    ),
    (
        "bad id characters",
        rule_doc(
            """
            - id: Deny_Exec
              decision: deny
            """
        ),
        "Deny_Exec",
        "Deny_Exec",
        "bad rule id `Deny_Exec` (use [a-z0-9][a-z0-9._-]*)",
    ),
    (
        "id starting with a dash",
        rule_doc(
            """
            - id: "-x"
              decision: deny
            """
        ),
        '"-x"',
        "-x",
        "bad rule id `-x`",
    ),
    (
        "id with a trailing newline",
        rule_doc(
            """
            - id: "abc\\n"
              decision: deny
            """
        ),
        "abc",
        "abc\n",
        "bad rule id",
    ),
    (
        "missing decision",
        rule_doc(
            """
            - id: undecided
              reason: "x"
            """
        ),
        "id: undecided",
        "undecided",
        "a rule needs `decision`",
    ),
    (
        "approval_ttl on a deny rule",
        rule_doc(
            """
            - id: ttl-deny
              decision: deny
              approval_ttl: 15m
            """
        ),
        "approval_ttl",
        "ttl-deny",
        "`approval_ttl` applies only to require_approval rules",
    ),
    (
        "malformed approval_ttl",
        rule_doc(
            """
            - id: ttl-bad
              decision: require_approval
              approval_ttl: 15x
            """
        ),
        "approval_ttl",
        "ttl-bad",
        "bad duration `15x`",
    ),
    (
        "zero approval_ttl",
        rule_doc(
            """
            - id: ttl-zero
              decision: require_approval
              approval_ttl: 0
            """
        ),
        "approval_ttl",
        "ttl-zero",
        "a duration must be positive",
    ),
    (
        "float approval_ttl",
        rule_doc(
            """
            - id: ttl-float
              decision: require_approval
              approval_ttl: 1.5
            """
        ),
        "approval_ttl",
        "ttl-float",
        "bad duration `1.5`",
    ),
    (
        "null approval_ttl",
        rule_doc(
            """
            - id: ttl-null
              decision: require_approval
              approval_ttl:
            """
        ),
        "approval_ttl",
        "ttl-null",
        "bad duration `None`",
    ),
    (
        "bad remediation set key",
        rule_doc(
            """
            - id: rem
              decision: deny
              remediations:
                - id: fix
                  set: {topic: job.safe, topics: [job.x]}
            """
        ),
        "set: {topic",
        "rem",
        "unknown key `topics` in remediation `set`",
    ),
    (
        "remediation set.topic is a pattern",
        rule_doc(
            """
            - id: rem-glob
              decision: deny
              remediations:
                - id: fix
                  set:
                    topic: job.*
            """
        ),
        "topic: job.*",
        "rem-glob",
        "`set.topic` must be a topic, not a pattern",
    ),
    (
        "duplicate remediation id",
        rule_doc(
            """
            - id: rem-dup
              decision: deny
              remediations:
                - id: fix
                - id: fix
            """
        ),
        ("id: fix", 2),
        "rem-dup",
        "duplicate remediation id `fix`",
    ),
    (
        "remediation without id",
        rule_doc(
            """
            - id: rem-noid
              decision: deny
              remediations:
                - description: "do something else"
            """
        ),
        "description:",
        "rem-noid",
        "a remediation needs an `id`",
    ),
    (
        "unknown detector",
        rule_doc(
            "",
            extra="""
            output_rules:
              - id: scrub
                decision: redact
                detectors:
                  - email
                  - passport
            """,
        ),
        "passport",
        "scrub",
        "unknown detector `passport`",
    ),
    (
        "bad output decision",
        rule_doc(
            "",
            extra="""
            output_rules:
              - id: scrub
                detectors: [email]
                decision: block
            """,
        ),
        "decision: block",
        "scrub",
        "bad output decision `block` (expected one of allow, redact, quarantine)",
    ),
    (
        "unknown output rule key",
        rule_doc(
            "",
            extra="""
            output_rules:
              - id: scrub
                detectors: [email]
                decision: redact
                detector: [email]
            """,
        ),
        "detector: [",
        "scrub",
        "unknown key `detector` in an output rule",
    ),
    (
        "bad output rule target",
        rule_doc(
            "",
            extra="""
            output_rules:
              - id: scrub
                detectors: [email]
                decision: redact
                targets: ["web:read"]
            """,
        ),
        "targets:",
        "scrub",
        "web:read",
    ),
    (
        "output rule id clashes with a rule id",
        rule_doc(
            "",
            extra="""
            output_rules:
              - id: first
                detectors: [email]
                decision: redact
            """,
        ),
        ("id: first", 2),
        "first",
        "duplicate rule id `first`",
    ),
    (
        "bad default decision",
        "version: 1\ndefault_decision: permit\nrules: []\n",
        "default_decision",
        None,
        "bad default_decision `permit`",
    ),
    (
        "bad fail mode",
        "version: 1\nfail_mode: ajar\n",
        "fail_mode",
        None,
        "bad fail_mode `ajar` (expected one of closed, open)",
    ),
    (
        "bad glob in a fail mode override",
        "version: 1\nfail_mode_overrides:\n  - topics: ['job..demo']\n    fail_mode: open\n",
        "job..demo",
        None,
        "bad glob `job..demo`",
    ),
    (
        "rules not a list",
        "version: 1\nrules:\n  id: a\n  decision: deny\n",
        "id: a",
        None,
        "`rules` must be a list",
    ),
    (
        "root not a mapping",
        "- version: 1\n",
        "version",
        None,
        "the policy must be a mapping",
    ),
    (
        "version 2",
        "name: t\nversion: 2\n",
        "version: 2",
        None,
        "unsupported policy version `2` (expected 1)",
    ),
    (
        "version true",
        "name: t\nversion: true\n",
        "version: true",
        None,
        "unsupported policy version `True`",
    ),
    (
        "version 1.0",
        "name: t\nversion: 1.0\n",
        "version: 1.0",
        None,
        "unsupported policy version `1.0`",
    ),
    (
        "duplicate key",
        "version: 1\nname: a\nname: b\n",
        "name: b",
        None,
        "duplicate key `name` in the policy",
    ),
]


@pytest.mark.parametrize(
    ("text", "needle", "rule_id", "fragment"),
    [pytest.param(*c[1:], id=c[0]) for c in CASES],
)
def test_error_names_line_and_rule(
    text: str, needle: str | tuple[str, int], rule_id: str | None, fragment: str
) -> None:
    err = load_error(text)
    want_line = line_of(text, *needle) if isinstance(needle, tuple) else line_of(text, needle)
    assert isinstance(err, GatehouseError)
    assert err.code == "policy_invalid"
    assert err.line == want_line, str(err)
    assert err.rule_id == rule_id, str(err)
    assert fragment in err.reason, str(err)
    assert err.details["line"] == want_line
    # The message leads with where: `line N: rule `id`: reason`.
    where = f"line {want_line}: " + (f"rule `{rule_id}`: " if rule_id is not None else "")
    assert str(err) == where + err.reason


def test_error_messages_follow_the_house_style() -> None:
    # Lowercase, user input in backticks, no trailing period (Cedar style, STYLE.md).
    for case in CASES:
        err = load_error(case[1])
        assert err.reason[0].islower() or err.reason[0] == "`", err.reason
        assert not err.reason.endswith("."), err.reason


def test_an_unknown_key_inside_a_rule_names_that_rule_not_the_previous_one() -> None:
    text = rule_doc(
        """
        - id: second
          decision: deny
          reasn: "typo"
        """
    )
    err = load_error(text)
    assert (err.line, err.rule_id) == (line_of(text, "reasn"), "second")


def test_errors_after_the_rules_do_not_blame_the_last_rule() -> None:
    text = rule_doc("", extra="fail_mode: sideways\n")
    err = load_error(text)
    assert (err.line, err.rule_id) == (line_of(text, "sideways"), None)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("version: 1\nrules:\n  - id: a\n    decision: deny\n   bad: x\n", 5),
        ("version: 1\nrules:\n  - id: a\n    decision: [deny\n  - id: b\n", 5),
        ('{\n  "version": 1,\n  "rules": [\n    {"id": "a", "decision": "deny"}\n  ]\n', 6),
        ("version: 1\nname: 'unterminated\n", 3),
    ],
)
def test_syntax_error_reports_the_line(text: str, line: int) -> None:
    err = load_error(text)
    assert err.line == line
    assert err.rule_id is None
    assert err.reason.startswith("not valid YAML or JSON")


@pytest.mark.parametrize("text", ["", "   \n", "# only a comment\n\n", b""])
def test_empty_text_is_an_error(text: str | bytes) -> None:
    err = load_error(text)
    assert err.reason == "the policy is empty"
    assert err.line is None


def test_bytes_that_are_not_utf8_are_an_error() -> None:
    assert load_error(b"version: 1\nname: \xff\n").reason == "the policy is not UTF-8 text"


def test_bytes_that_are_utf8_load() -> None:
    policy = gp.load("version: 1\nname: café\ndefault_decision: allow\n".encode())
    assert policy.name == "café"
    assert policy.decide({"topic": "job.x"}).decision == "allow"


# ---------------------------------------------------------------------------------------------
# What a good bundle turns into.


def test_seed_bundle_model(seed: gp.Policy) -> None:
    assert seed.name == "seed"
    assert seed.version == 1
    assert seed.default_decision == "allow"
    assert seed.fail_mode == "closed"
    assert [(r.id, r.decision) for r in seed.rules] == [
        ("deny-destructive-exec", "deny"),
        ("require-approval-prod-write", "require_approval"),
        ("require-approval-prod-undeclared", "require_approval"),
    ]
    deny, approve, undeclared = seed.rules
    assert [c.to_data() for c in undeclared.conditions] == [
        {"not": {"exists": "capability"}},
        {"not": {"eq": {"approved": True}}},
    ]
    assert [(r.topics, r.fields) for r in seed.require] == [
        (("job.deploy.**",), ("meta.capability", "labels.env"))
    ]
    assert deny.match.topics == ("job.exec.*",)
    assert dict(deny.match.labels) == {"command_class": ("destructive",)}
    assert approve.match.capabilities == ("infra.write",)
    assert approve.approval_ttl == 900
    assert [c.to_data() for c in approve.conditions] == [{"not": {"eq": {"approved": True}}}]
    assert [r.id for r in approve.remediations] == ["plan-instead", "staging-first"]
    assert approve.remediations[0].to_dict() == {
        "id": "plan-instead",
        "description": "run terraform plan instead of apply",
        "set": {"topic": "job.deploy.plan", "capability": "infra.read"},
        "set_labels": {},
    }
    assert dict(approve.remediations[1].set_labels) == {"env": "staging"}
    assert [(o.id, o.detectors, o.decision) for o in seed.output_rules] == [
        (
            "quarantine-private-keys",
            (
                "private_key",
                "aws_access_key",
                "aws_secret_key",
                "github_token",
                "slack_token",
                "jwt",
                "generic_api_key",
                "password",
            ),
            "quarantine",
        ),
        ("redact-pii", ("email", "credit_card", "ssn", "iban"), "redact"),
    ]
    assert [(o.topics, o.fail_mode) for o in seed.fail_mode_overrides] == [(("job.demo.**",), "open")]
    assert deny.line == line_of(seed.text, "id: deny-destructive-exec")


def test_defaults_when_keys_are_omitted() -> None:
    policy = gp.load("version: 1\nrules:\n  - id: r\n    decision: deny\n")
    assert policy.name == "unnamed"
    assert policy.default_decision == "deny"
    assert policy.fail_mode == "closed"
    rule = policy.rules[0]
    assert rule.reason == "matched rule `r`"
    assert rule.match == gp.Match()
    assert (rule.conditions, rule.remediations, rule.approval_ttl, rule.audit) == (
        (),
        (),
        None,
        True,
    )


@pytest.mark.parametrize(
    ("ttl", "seconds"),
    [("15m", 900), ("30s", 30), ("2h", 7200), ("1d", 86400), ("1w", 604800), ("45", 45), (60, 60)],
)
def test_approval_ttl_units(ttl: str | int, seconds: int) -> None:
    text = f"version: 1\nrules:\n  - id: r\n    decision: require_approval\n    approval_ttl: {ttl}\n"
    assert gp.load(text).rules[0].approval_ttl == seconds


def test_shorthands_single_string_lists_and_numeric_labels() -> None:
    policy = gp.load(
        _text(
            """
            version: 1
            rules:
              - id: r
                decision: deny
                match:
                  topics: job.exec.*
                  labels: {env: prod, port: 443, tier: [web, db]}
                  capabilities: infra.write
            """
        )
    )
    m = policy.rules[0].match
    assert m.topics == ("job.exec.*",)
    assert dict(m.labels) == {"env": ("prod",), "port": ("443",), "tier": ("web", "db")}
    assert m.capabilities == ("infra.write",)


def test_condition_forms_are_normalised() -> None:
    policy = gp.load(
        _text(
            """
            version: 1
            rules:
              - id: r
                decision: deny
                conditions:
                  - {approved: true}
                  - {tenant: acme, labels.env: prod}
                  - in: {tenant: acme}
                  - not_in: {requester_role: [admin, owner]}
                  - any: [{eq: {capability: x}}, {not: {approved: false}}]
            """
        )
    )
    assert [c.to_data() for c in policy.rules[0].conditions] == [
        {"eq": {"approved": True}},
        {"all": [{"eq": {"tenant": "acme"}}, {"eq": {"labels.env": "prod"}}]},
        {"in": {"tenant": ["acme"]}},
        {"not_in": {"requester_role": ["admin", "owner"]}},
        {"any": [{"eq": {"capability": "x"}}, {"not": {"eq": {"approved": False}}}]},
    ]


def test_rules_null_or_absent_means_no_rules() -> None:
    for text in ("version: 1\nrules:\n", "version: 1\n", "version: 1\nrules: []\n"):
        policy = gp.load(text)
        assert policy.rules == ()
        assert policy.decide({"topic": "job.x"}).rule_id == "default"


# ---------------------------------------------------------------------------------------------
# JSON input, snapshots, and all-or-nothing loading.


def test_json_text_has_the_same_semantics(seed_text: str, seed: gp.Policy) -> None:
    as_json = json.dumps(yaml.safe_load(seed_text), indent=2)
    policy = gp.load(as_json)
    assert policy.rules == tuple(
        # `line` differs between the two texts; everything else is identical.
        r.__class__(**{**{f: getattr(r, f) for f in r.__slots__}, "line": pr.line})
        for r, pr in zip(seed.rules, policy.rules, strict=True)
    )
    for ctx in (
        {"topic": "job.exec.shell", "labels": {"command_class": "destructive"}},
        {"topic": "job.deploy.apply", "labels": {"env": "prod"}, "capability": "infra.write"},
        {"topic": "job.demo.read"},
    ):
        assert policy.decide(ctx) == seed.decide(ctx)
    assert policy.snapshot == seed.snapshot


def test_json_errors_carry_lines_too() -> None:
    text = json.dumps({"version": 1, "rules": [{"id": "a", "decision": "deny", "mathc": {}}]}, indent=2)
    err = load_error(text)
    assert (err.line, err.rule_id) == (line_of(text, '"mathc"'), "a")


def test_snapshot_is_sha256_of_the_canonical_text(seed: gp.Policy) -> None:
    assert seed.snapshot == hashlib.sha256(seed.canonical.encode("utf-8")).hexdigest()
    assert len(seed.snapshot) == 64
    assert json.loads(seed.canonical) == yaml.safe_load(seed.text)
    assert gp.canonical_json({"b": 1, "a": [1, {"d": 2, "c": "é"}]}) == '{"a":[1,{"c":"é","d":2}],"b":1}'


_BUNDLE_A = """
version: 1
name: snap
default_decision: allow
rules:
  - id: r1
    decision: deny
    match: {topics: ["job.exec.*"], labels: {env: prod}}
  - id: r2
    decision: require_approval
    approval_ttl: 15m
"""

_BUNDLE_A_REORDERED = """
# the same bundle, keys in another order, other whitespace and comments
rules:
  -   decision:   deny
      match:
          labels:
              env: "prod"
          topics:
            - 'job.exec.*'
      id: r1
  - approval_ttl: "15m"
    id: r2
    decision: require_approval
default_decision: allow
name: snap
version: 1
"""


def test_snapshot_ignores_key_order_whitespace_comments_and_format() -> None:
    a = gp.load(_BUNDLE_A)
    b = gp.load(_BUNDLE_A_REORDERED)
    c = gp.load(json.dumps(yaml.safe_load(_BUNDLE_A)))
    d = gp.load(json.dumps(yaml.safe_load(_BUNDLE_A), indent=4, sort_keys=True))
    assert a.snapshot == b.snapshot == c.snapshot == d.snapshot
    assert a.canonical == b.canonical == c.canonical == d.canonical


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("decision: deny", "decision: allow"),
        ('"job.exec.*"', '"job.exec.**"'),
        ("env: prod", "env: dev"),
        ("approval_ttl: 15m", "approval_ttl: 16m"),
        ("name: snap", "name: snap2"),
    ],
)
def test_snapshot_changes_when_the_bundle_changes(old: str, new: str) -> None:
    assert old in _BUNDLE_A
    assert gp.load(_BUNDLE_A).snapshot != gp.load(_BUNDLE_A.replace(old, new)).snapshot


def test_snapshot_changes_when_rules_are_reordered() -> None:
    # Rule order decides ties, so it is part of what the snapshot pins.
    data = yaml.safe_load(_BUNDLE_A)
    swapped = {**data, "rules": list(reversed(data["rules"]))}
    assert gp.load(json.dumps(data)).snapshot != gp.load(json.dumps(swapped)).snapshot


def test_a_broken_bundle_raises_and_yields_no_policy(seed_text: str, seed: gp.Policy) -> None:
    # Everything valid except the very last line: nothing may be built.
    broken = seed_text + "  - id: late\n    detectors: [email]\n    decision: shred\n"
    result: gp.Policy | None = None
    with pytest.raises(PolicyError) as info:
        result = gp.load(broken)
    assert result is None
    assert info.value.line == len(broken.splitlines())
    assert info.value.rule_id == "late"
    # The running policy is untouched and a good bundle still loads afterwards.
    ctx = {"topic": "job.exec.shell", "labels": {"command_class": "destructive"}}
    assert seed.decide(ctx).rule_id == "deny-destructive-exec"
    assert gp.load(seed_text).snapshot == seed.snapshot


def test_loading_does_not_retain_parsed_nodes(seed_text: str) -> None:
    # Regression: the shared YAML scalar constructor memoised every node of every load forever.
    from gatehouse.policy import _nodes

    for _ in range(5):
        gp.load(seed_text)
    assert _nodes._scalar_constructor.constructed_objects == {}

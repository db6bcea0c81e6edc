"""The compiled, indexed engine against a naive reference evaluator (`_reference.py`).

Hypothesis writes random bundles (topics from a small alphabet so that hits are common; exact,
`*`, `**`, partial `re*` and mid-pattern wildcards; labels, capabilities (exact and globs),
tenants, risk tags, roles, step targets and condition trees with `exists`; random decisions and
order), renders them as YAML or JSON text, loads
them with `gatehouse.policy.load` and asks both evaluators about random request contexts.

The strategies draw integers and pick from precomputed tables rather than nesting `one_of` and
`lists`: generating the data is most of the cost of a property test, and this keeps the file
fast enough to run hundreds of examples.
"""

from __future__ import annotations

import json
from typing import Any

import _reference as ref
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import gatehouse.policy as gp

SEGMENTS = ["job", "exec", "db", "read", "re", "deploy"]
LABEL_KEYS = ["env", "cls"]
LABEL_VALUES = ["prod", "dev", "destructive"]
CAPABILITIES = ["infra.write", "infra.read", "exec"]
# What a rule may name: the capabilities themselves and globs over them (`*` alone is any).
CAPABILITY_PATTERNS = [*CAPABILITIES, "infra.*", "*", "**", "in*.re*", "ex*", "infra.**"]
# Step targets and the patterns a step rule may name (segments split on `:`).
TARGETS = ["adapter:github:list", "adapter:bank:delete", "adapter:github:list.all", "adapter:github:a:b"]
TARGET_PATTERNS = [
    "adapter:github:list",
    "adapter:github:*",
    "adapter:*:delete",
    "adapter:**",
    "**",
    "adapter:github:li*",
    "adapter:github:list.all",
    "*:bank:*",
]
TENANTS = ["acme", "globex"]
TAGS = ["change", "pii", "money"]
ROLES = ["agent", "admin"]
DECISIONS = ["allow", "deny", "require_approval"]

_Dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

# Glob segments: literals twice as likely as each wildcard shape.
GLOB_SEGMENTS = (
    sorted(
        {
            *SEGMENTS,
            "*",
            "**",
            *(s[:2] + "*" for s in SEGMENTS),  # `re*`, `de*`: a partial segment
            *("*" + s[-2:] for s in SEGMENTS),  # `*ad`
            *(s[0] + "*" + s[-1] for s in SEGMENTS),  # `r*d`: mid-segment
            *(s[:1] + "**" for s in SEGMENTS),  # `j**`: crosses dots from inside a segment
        }
    )
    + SEGMENTS * 3
)


def _subset(values: list[str], *, min_size: int = 1) -> st.SearchStrategy[list[str]]:
    """A subset of `values` (in order), from one integer draw."""
    lo = 1 if min_size else 0
    return st.integers(lo, 2 ** len(values) - 1).map(
        lambda mask: [v for i, v in enumerate(values) if mask >> i & 1]
    )


def _path(table: list[str]) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(table), min_size=1, max_size=4).map(".".join)


_glob = _path(GLOB_SEGMENTS)
_topic = _path(SEGMENTS)


@st.composite
def _strings(draw: st.DrawFn, values: list[str]) -> Any:
    """A non-empty list of strings, or (the loader's shorthand) a single string."""
    chosen = draw(_subset(values))
    return chosen[0] if len(chosen) == 1 and draw(st.booleans()) else chosen


# Condition fields and the values they are compared with.
FIELD_VALUES: dict[str, list[Any]] = {
    "approved": [True, False, 1, 0],
    "tenant": TENANTS,
    "capability": CAPABILITIES,
    "requester_role": ROLES,
    "risk_tags": TAGS,
    "topic": ["job.exec", "job.db.read", "job"],
    "labels.env": ["prod", "dev"],
    "labels.cls": ["destructive", "prod"],
}
FIELDS = sorted(FIELD_VALUES)


@st.composite
def _condition(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    kind = draw(st.integers(0, 9 if depth < 2 else 5))
    if kind >= 6:  # a tree: not / all / any
        if kind == 6:
            return {"not": draw(_condition(depth + 1))}
        n = draw(st.integers(1, 3))
        return {"all" if kind == 7 else "any": [draw(_condition(depth + 1)) for _ in range(n)]}
    field = draw(st.sampled_from(FIELDS))
    values = FIELD_VALUES[field]
    if kind <= 1:  # shorthand `{approved: true}` means eq
        return {field: draw(st.sampled_from(values))}
    if kind == 2:
        return {"eq": {field: draw(st.sampled_from(values))}}
    chosen = [values[i] for i in draw(st.lists(st.integers(0, len(values) - 1), min_size=1, max_size=3))]
    if kind == 5 and draw(st.booleans()):
        return {"exists": field}
    op = "in" if kind <= 4 else "not_in"
    return {op: {field: chosen if len(chosen) > 1 or draw(st.booleans()) else chosen[0]}}


@st.composite
def _match(draw: st.DrawFn) -> dict[str, Any]:
    which = draw(
        _subset(["topics", "labels", "capabilities", "tenants", "risk_tags", "roles", "targets"], min_size=0)
    )
    m: dict[str, Any] = {}
    if "targets" in which:
        m["targets"] = draw(_strings(TARGET_PATTERNS))
    if "topics" in which:
        n = draw(st.integers(1, 3))
        globs = [draw(_glob) for _ in range(n)]
        m["topics"] = globs[0] if n == 1 and draw(st.booleans()) else globs
    if "labels" in which:
        m["labels"] = {k: draw(_strings(LABEL_VALUES)) for k in draw(_subset(LABEL_KEYS))}
    if "capabilities" in which:
        m["capabilities"] = draw(_strings(CAPABILITY_PATTERNS))
    if "tenants" in which:
        m["tenants"] = draw(_strings(TENANTS))
    if "risk_tags" in which:
        m["risk_tags"] = draw(_strings(TAGS))
    if "roles" in which:
        m["requester_roles"] = draw(_strings(ROLES))
    return m


@st.composite
def _bundle(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(0, 8))
    # A random listed order, so that rule ids say nothing about position.
    ids = draw(st.permutations([f"r{i}" for i in range(n)]))
    rules = []
    for rid in ids:
        rule: dict[str, Any] = {"id": rid, "decision": draw(st.sampled_from(DECISIONS))}
        match = draw(_match())
        if match or draw(st.booleans()):
            rule["match"] = match
        n_cond = draw(st.integers(0, 2))
        if n_cond:
            rule["conditions"] = [draw(_condition()) for _ in range(n_cond)]
        rules.append(rule)
    bundle: dict[str, Any] = {"version": 1, "name": "prop", "rules": rules}
    default = draw(st.sampled_from([None, *DECISIONS]))
    if default is not None:
        bundle["default_decision"] = default
    return bundle


def _render(bundle: dict[str, Any], style: str) -> str:
    if style == "json":
        return json.dumps(bundle, indent=2)
    if style == "json-compact":
        return json.dumps(bundle)
    flow = style == "yaml-flow"
    return yaml.dump(bundle, Dumper=_Dumper, default_flow_style=flow, sort_keys=False)


_STYLES = st.sampled_from(["yaml-block", "yaml-flow", "json", "json-compact"])

# ---------------------------------------------------------------------------------------------
# Contexts: some keys absent, some present with "no" values; approved sometimes 1 or 0.

ODD_TOPICS = ["", "job.", "job..read", ".re"]


@st.composite
def _context(draw: st.DrawFn, *, dense: bool = False) -> dict[str, Any]:
    keys = ["topic", "tenant", "labels", "capability", "risk_tags", "requester_role", "approved"]
    present = keys if dense else draw(_subset(keys, min_size=0))
    ctx: dict[str, Any] = {}
    # Now and then a tool call (a step): only step rules may judge it.
    if not draw(st.integers(0, 3)):
        ctx["target"] = draw(st.sampled_from(TARGETS))
    if "topic" in present:
        ctx["topic"] = draw(_topic) if draw(st.integers(0, 5)) else draw(st.sampled_from(ODD_TOPICS))
    if "tenant" in present:
        ctx["tenant"] = draw(st.sampled_from([*TENANTS, "initech"]))
    if "labels" in present:
        keys_ = draw(_subset([*LABEL_KEYS, "team"], min_size=0 if not dense else 1))
        ctx["labels"] = {k: draw(st.sampled_from(LABEL_VALUES)) for k in keys_}
    if "capability" in present:
        # Usually a string; sometimes a list, which matches when any item does.
        if draw(st.integers(0, 3)):
            ctx["capability"] = draw(st.sampled_from([*CAPABILITIES, "other"]))
        else:
            ctx["capability"] = draw(_subset(CAPABILITIES, min_size=0))
    if "risk_tags" in present:
        ctx["risk_tags"] = draw(_subset([*TAGS, "read"], min_size=0))
    if "requester_role" in present:
        if draw(st.integers(0, 3)):
            ctx["requester_role"] = draw(st.sampled_from([*ROLES, "human"]))
        else:
            ctx["requester_role"] = draw(_subset(ROLES, min_size=0))
    if "approved" in present:
        ctx["approved"] = draw(st.sampled_from([True, False, 1, 0]))
    return ctx


def _check(policy: gp.Policy, ctx: dict[str, Any]) -> None:
    want = ref.step_decide(policy.rules, policy.default_decision, ctx, policy.sets)
    got = policy.decide(ctx)
    assert (got.decision, got.rule_id) == want, f"decide {ctx!r}"
    assert policy.scan(ctx) == got, f"scan {ctx!r}"
    ex = policy.explain(ctx)
    assert ex.decision == got, f"explain {ctx!r}"
    assert ex.winner == got.rule_id
    assert [t.rule_id for t in ex.rules] == [r.id for r in policy.rules]
    for trace, rule in zip(ex.rules, policy.rules, strict=True):
        failed = ref.step_failures(rule, ctx, policy.sets)
        assert trace.matched is (not failed), (rule.id, ctx)
        assert trace.failed_field == (failed[0] if failed else None), (rule.id, ctx)


@settings(max_examples=300, deadline=None)
@given(bundle=_bundle(), style=_STYLES, contexts=st.lists(_context(), min_size=1, max_size=6))
def test_engine_agrees_with_the_naive_reference(
    bundle: dict[str, Any], style: str, contexts: list[dict[str, Any]]
) -> None:
    policy = gp.load(_render(bundle, style))
    # The loaded model is the bundle we wrote, in the order we wrote it.
    assert [(r.id, r.decision) for r in policy.rules] == [(r["id"], r["decision"]) for r in bundle["rules"]]
    assert policy.default_decision == bundle.get("default_decision", "deny")
    for ctx in contexts:
        _check(policy, ctx)


@settings(max_examples=40, deadline=None)
@given(bundle=_bundle(), a=_STYLES, b=_STYLES)
def test_snapshot_does_not_depend_on_the_rendering(bundle: dict[str, Any], a: str, b: str) -> None:
    assert gp.load(_render(bundle, a)).snapshot == gp.load(_render(bundle, b)).snapshot


# Focused properties: the general one above spreads its examples thin, so these concentrate on
# the parts where a bug needs a particular rule *and* a particular context to show.


@settings(max_examples=100, deadline=None)
@given(
    globs=st.lists(_glob, min_size=1, max_size=12),
    decisions=st.lists(st.sampled_from(DECISIONS), min_size=12, max_size=12),
    topics=st.lists(_topic, min_size=1, max_size=10),
    odd=st.sampled_from(ODD_TOPICS),
)
def test_topic_only_rules_exercise_the_trie(
    globs: list[str], decisions: list[str], topics: list[str], odd: str
) -> None:
    # Many topic-only rules sharing prefixes: every candidate comes from the topic index.
    bundle = {
        "version": 1,
        "default_decision": "allow",
        "rules": [
            {"id": f"t{i}", "decision": d, "match": {"topics": [g]}}
            for i, (g, d) in enumerate(zip(globs, decisions, strict=False))
        ],
    }
    policy = gp.load(json.dumps(bundle))
    for topic in [*topics, odd]:
        _check(policy, {"topic": topic})


@settings(max_examples=100, deadline=None)
@given(
    n=st.integers(1, 4),
    data=st.data(),
    contexts=st.lists(_context(dense=True), min_size=1, max_size=6),
)
def test_condition_only_rules(n: int, data: st.DataObject, contexts: list[dict[str, Any]]) -> None:
    bundle = {
        "version": 1,
        "default_decision": "allow",
        "rules": [
            {
                "id": f"c{i}",
                "decision": data.draw(st.sampled_from(DECISIONS)),
                "conditions": [data.draw(_condition())],
            }
            for i in range(n)
        ],
    }
    policy = gp.load(json.dumps(bundle))
    for ctx in contexts:
        _check(policy, ctx)


_ONE_FIELD = ["capabilities", "tenants", "risk_tags", "requester_roles", "labels", "none"]
_FIELD_TABLE = {
    "capabilities": CAPABILITY_PATTERNS,
    "tenants": TENANTS,
    "risk_tags": TAGS,
    "requester_roles": ROLES,
}


@settings(max_examples=100, deadline=None)
@given(
    n=st.integers(1, 6),
    data=st.data(),
    contexts=st.lists(_context(dense=True), min_size=1, max_size=6),
)
def test_rules_without_topics_use_the_other_indexes(
    n: int, data: st.DataObject, contexts: list[dict[str, Any]]
) -> None:
    rules = []
    for i in range(n):
        field = data.draw(st.sampled_from(_ONE_FIELD))
        match: dict[str, Any] = {}
        if field == "labels":
            match = {"labels": {k: data.draw(_subset(LABEL_VALUES)) for k in data.draw(_subset(LABEL_KEYS))}}
        elif field != "none":
            match = {field: data.draw(_subset(_FIELD_TABLE[field]))}
        rules.append({"id": f"m{i}", "decision": data.draw(st.sampled_from(DECISIONS)), "match": match})
    policy = gp.load(yaml.dump({"version": 1, "rules": rules}, Dumper=_Dumper))
    for ctx in contexts:
        _check(policy, ctx)


# Step rules compare the tool call: `params.<path>` through nested mappings, `adapter`, `action`.
STEP_FIELD_VALUES: dict[str, list[Any]] = {
    "params.to": ["ops", "eve", 3],
    "params.to.domain": ["corp", "evil"],
    "params.amount": ["100", 100, True],
    "adapter": ["github", "bank"],
    "action": ["list", "delete"],
    "labels.env": ["prod", "dev"],
}
PARAM_VALUES: list[Any] = [
    "ops", "eve", "corp", 3, 100, "100", True, None, [], ["ops", "eve"], ["ops", {"x": 1}],
    {"domain": "corp"}, {"domain": "evil"}, {"domain": ["corp", "x"]}, {"domain": {"deep": 1}},
]  # fmt: skip


@st.composite
def _step_condition(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    kind = draw(st.integers(0, 6 if depth < 1 else 4))
    if kind == 5:
        return {"all": [draw(_step_condition(depth + 1)) for _ in range(draw(st.integers(1, 2)))]}
    if kind == 6:
        return {"not": draw(_step_condition(depth + 1))}
    field = draw(st.sampled_from(sorted(STEP_FIELD_VALUES)))
    values = STEP_FIELD_VALUES[field]
    if kind == 0:
        return {"exists": field}
    if kind == 1:
        return {"eq": {field: draw(st.sampled_from(values))}}
    chosen = draw(st.lists(st.sampled_from(values), min_size=1, max_size=3))
    return {"not_in" if kind == 4 else "in": {field: chosen}}


@st.composite
def _step_context(draw: st.DrawFn) -> dict[str, Any]:
    adapter, action = draw(st.sampled_from(["github", "bank"])), draw(st.sampled_from(["list", "delete"]))
    ctx: dict[str, Any] = {"target": f"adapter:{adapter}:{action}", "adapter": adapter, "action": action}
    if draw(st.booleans()):
        ctx["params"] = {
            k: draw(st.sampled_from(PARAM_VALUES)) for k in draw(_subset(["to", "amount"], min_size=0))
        }
    elif draw(st.booleans()):
        ctx["params"] = draw(st.sampled_from([None, "to", ["to"]]))
    if draw(st.booleans()):
        ctx["labels"] = {"env": draw(st.sampled_from(["prod", "dev"]))}
    return ctx


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(1, 6),
    data=st.data(),
    contexts=st.lists(_step_context(), min_size=1, max_size=6),
)
def test_step_rules_on_params_and_the_call(
    n: int, data: st.DataObject, contexts: list[dict[str, Any]]
) -> None:
    # Broad targets (`**`, `adapter:*:*`) with equality conditions are grouped by those
    # conditions instead of the trie: the index keys come from what the rules compare.
    patterns = [
        "adapter:**",
        "**",
        "adapter:*:*",
        "adapter:*:delete",
        "*:bank:*",
        "adapter:github:*",
        "adapter:bank:delete",
    ]
    rules = [
        {
            "id": f"s{i}",
            "decision": data.draw(st.sampled_from(DECISIONS)),
            "match": {"targets": data.draw(_strings(patterns))},
            "conditions": [data.draw(_step_condition()) for _ in range(data.draw(st.integers(0, 2)))],
        }
        for i in range(n)
    ]
    policy = gp.load(json.dumps({"version": 1, "default_decision": "allow", "rules": rules}))
    for ctx in contexts:
        _check(policy, ctx)


def test_the_reference_agrees_with_the_documented_examples(seed: gp.Policy) -> None:
    # Guard against a reference that is wrong in the same way as the engine.
    prod_write = {
        "topic": "job.deploy.apply",
        "labels": {"env": "prod"},
        "capability": "infra.write",
    }
    cases = [
        ({"topic": "job.exec.shell", "labels": {"command_class": "destructive"}}, "deny"),
        (prod_write, "require_approval"),
        ({**prod_write, "approved": True}, "allow"),
        ({**prod_write, "approved": 1}, "require_approval"),
        ({"topic": "job.demo.read"}, "allow"),
    ]
    for ctx, decision in cases:
        assert ref.decide(seed.rules, seed.default_decision, ctx)[0] == decision


# The operators of section 9 over params, against `_reference.step_condition_holds`.
OP_SETS = {"contacts": ["Ops@Corp.com", "eve"], "payees": ["12345678", "DE89"], "doms": ["corp.com"]}
OP_VALUES: list[Any] = [
    "ops@corp.com", "OPS@CORP.COM", "eve", "x@mail.corp.com", "https://corp.com.evil.io/a", "corp.com:80",
    "rm -rf /", "Password", "100", "1e3", " 7 ", "nan", 5, 1500, 12345678, True, None, 2.5,
    [], ["eve", "EVE"], ["eve", "ops@corp.com"], [150, "200"], [1, "x"], {"a": "eve"}, ["ｅｖｅ"],  # noqa: RUF001
]  # fmt: skip


@st.composite
def _op_condition(draw: st.DrawFn, depth: int = 0, element: bool = False) -> dict[str, Any]:
    field = "$" if element and draw(st.booleans()) else draw(st.sampled_from(["params.a", "params.b"]))
    kind = draw(st.integers(0, 16 if depth < 1 else 13))
    if kind == 0:
        return {
            draw(st.sampled_from(["gt", "gte", "lt", "lte"])): {field: draw(st.sampled_from([0, 100, 1000]))}
        }
    if kind == 1:
        return {draw(st.sampled_from(["len_gt", "len_lt"])): {field: draw(st.integers(0, 3))}}
    if kind == 2:
        return {"matches": {field: draw(st.sampled_from(["^e", "(?i)PASS", "rm\\s+-rf", "\\d{3}"]))}}
    if kind == 3:
        return {"glob": {field: draw(st.sampled_from(["e*", "*corp.com", "?ve", "*"]))}}
    if kind == 4:
        return {"contains": {field: draw(st.sampled_from(["eve", "CORP", 5, "x"]))}}
    if kind == 5:
        return {"exists": field}
    if kind in (6, 7):
        names = draw(st.sampled_from([["contacts"], ["payees"], ["contacts", "payees"]]))
        return {draw(st.sampled_from(["in_set", "not_in_set"])): {field: names}}
    if kind in (8, 9):
        doms = draw(st.sampled_from([["doms"], ["corp.com"], ["evil.io", "doms"]]))
        return {draw(st.sampled_from(["domain_in", "not_domain_in"])): {field: doms}}
    if kind == 10:
        return {"eq": {field: draw(st.sampled_from(["eve", "EVE", 5, True, "100"]))}}
    if kind == 11:
        return {
            draw(st.sampled_from(["in", "not_in"])): {
                field: draw(st.sampled_from([["eve", 5], ["ops@corp.com"]]))
            }
        }
    if kind == 12:
        return {
            "session_count": {
                "targets": ["adapter:bank:*"],
                draw(st.sampled_from(["gt", "eq"])): draw(st.integers(0, 2)),
            }
        }
    if kind == 13:
        return {"not": draw(_op_condition(depth + 1, element))}
    if kind == 14:
        return {"any": [draw(_op_condition(depth + 1, element)) for _ in range(2)]}
    q = draw(st.sampled_from(["any", "all"]))
    inner = [draw(_op_condition(depth + 1, True)) for _ in range(draw(st.integers(1, 2)))]
    return {
        draw(st.sampled_from(["each", "some"])): {
            "field": draw(st.sampled_from(["params.a", "params.b"])),
            q: inner,
        }
    }


@st.composite
def _op_context(draw: st.DrawFn) -> dict[str, Any]:
    ctx: dict[str, Any] = {"target": draw(st.sampled_from(["adapter:bank:pay", "adapter:mail:send"]))}
    ctx["params"] = {k: draw(st.sampled_from(OP_VALUES)) for k in draw(_subset(["a", "b"], min_size=0))}
    if draw(st.booleans()):
        history = ["adapter:bank:pay", "adapter:mail:send", "adapter:bank:get"]
        ctx["session"] = {"allowed_targets": draw(st.lists(st.sampled_from(history), max_size=4))}
    return ctx


@settings(max_examples=300, deadline=None)
@given(n=st.integers(1, 6), data=st.data(), contexts=st.lists(_op_context(), min_size=1, max_size=6))
def test_step_operators_agree_with_the_naive_reference(
    n: int, data: st.DataObject, contexts: list[dict[str, Any]]
) -> None:
    patterns = ["adapter:**", "adapter:bank:*", "adapter:mail:send", "adapter:*:*"]
    rules = [
        {
            "id": f"o{i}",
            "decision": data.draw(st.sampled_from(DECISIONS)),
            "match": {"targets": data.draw(_strings(patterns))},
            "conditions": [data.draw(_op_condition()) for _ in range(data.draw(st.integers(1, 2)))],
        }
        for i in range(n)
    ]
    bundle = {"version": 1, "default_decision": "allow", "sets": OP_SETS, "rules": rules}
    policy = gp.load(json.dumps(bundle))
    for ctx in contexts:
        _check(policy, ctx)

"""YAML/JSON text -> validated, frozen policy model.

Validation walks the YAML *node* tree rather than plain Python values (with the readers of
`gatehouse.policy._nodes`), so every error can name the line it comes from. Nothing is built
until the whole document validates: a broken bundle never half-loads. JSON is read by the same
path (JSON is YAML for our purposes).

A rule's conditions may compare only the fields its stage declares (`JOB_CONTEXT` for a job
rule, `STEP_CONTEXT` for a step rule, one that names targets): a misspelt field or operator is
an error with its line, not a field that is never present.

Every check the server's install runs lives here, so `gatehouse policy check` and
`PUT /api/v1/policy` judge a bundle alike: that includes compiling the bundle's `classifiers`
into the ingress classifier (a regex that does not compile is a load error with its line).

Two spellings of a rule load to the same `Rule`: the canonical one (`decision`, `match`,
`conditions`) and the seeds' `{id, target, condition, action, audit}` form, in which `target`
(a string or a list) is `match.targets`, `condition` (one condition or a list) is `conditions`
and `action` is `decision`. `gatehouse.policy.canonical` writes a loaded bundle back in the
canonical form.
A document without `version` is version 1.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Any

from gatehouse.errors import BadRequest, PolicyError
from gatehouse.ingress import DEFAULT_CLASSIFIER, Classifier, Pattern
from gatehouse.ingress.canon import canon_capability, canon_topic, canon_value
from gatehouse.policy._catalog_loader import read_catalog
from gatehouse.policy._durations import parse_duration
from gatehouse.policy._nodes import (
    Ctx,
    MappingNode,
    ScalarNode,
    as_sequence,
    boolean,
    choice,
    compose,
    item_node,
    list_nodes,
    mapping,
    plain,
    scalar,
    str_list,
    string,
)
from gatehouse.policy._regex import RegexError, compile_re2
from gatehouse.policy.canonical import canonical_json
from gatehouse.policy.catalog import Catalog
from gatehouse.policy.glob import GlobError, capability_glob, compile_glob, compile_target, is_valid_topic
from gatehouse.policy.model import (
    DECISIONS,
    DETECTORS,
    FAIL_MODES,
    JOB_CONTEXT,
    LABEL_KEY,
    LEAF_OPS,
    OUTPUT_DECISIONS,
    REQUIRE_APPROVAL,
    STEP_CONTEXT,
    STEP_DETECTORS,
    TREE_OPS,
    Condition,
    ContextSchema,
    FailModeOverride,
    Match,
    OutputRule,
    Remediation,
    Requirement,
    Rule,
)

__all__ = ["Bundle", "parse_bundle"]

_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*$")

_TOP_KEYS = (
    "version",
    "name",
    "description",
    "default_decision",
    "fail_mode",
    "fail_mode_overrides",
    "rules",
    "output_rules",
    "classifiers",
    "require",
    "sets",
    "adapters",
)
_RULE_KEYS = (
    "id",
    "description",
    "decision",
    "reason",
    "match",
    "conditions",
    "remediations",
    "approval_ttl",
    "audit",
    # The seeds' spelling: `action` is `decision`, `target` is `match.targets`, `condition` is
    # `conditions` (see the module docstring).
    "action",
    "target",
    "condition",
)
_MATCH_KEYS = ("topics", "targets", "labels", "capabilities", "tenants", "risk_tags", "requester_roles")
_REMEDIATION_KEYS = ("id", "description", "set", "set_labels")
_REMEDIATION_SET_KEYS = ("topic", "capability", "risk_tags", "prompt")
_OUTPUT_KEYS = ("id", "detectors", "decision", "reason", "topics", "targets")
_OVERRIDE_KEYS = ("topics", "fail_mode")
_REQUIRE_KEYS = ("topics", "fields")
_LEAF_OPS = LEAF_OPS
_TREE_OPS = TREE_OPS
_NUMBER_OPS = ("gt", "gte", "lt", "lte")
_SET_OPS = ("in_set", "not_in_set")
_DOMAIN_OPS = ("domain_in", "not_domain_in")
# Operators that read what only a step carries (its params, its session).
_STEP_ONLY = ("detects", "from_untrusted", "from_prompt", "session_count")
_SET_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
# Fields of a job body a `require` entry may name: the prompt, a meta key, or a label.
_REQUIRE_META = ("capability", "risk_tags", "source", "trace_id", "session_id", "description")


class Bundle:
    """Everything the loader validated, ready for the compiler."""

    __slots__ = (
        "canonical",
        "catalog",
        "classifier",
        "classifiers",
        "default_decision",
        "description",
        "fail_mode",
        "fail_mode_overrides",
        "name",
        "output_rules",
        "require",
        "rules",
        "sets",
        "snapshot",
        "version",
    )

    # Declared for the type checker; `__init__` sets them all.
    canonical: str
    catalog: Catalog
    classifier: Classifier
    classifiers: tuple[Any, ...]
    default_decision: str
    description: str
    fail_mode: str
    fail_mode_overrides: tuple[FailModeOverride, ...]
    name: str
    output_rules: tuple[OutputRule, ...]
    require: tuple[Requirement, ...]
    rules: tuple[Rule, ...]
    sets: dict[str, tuple[str, ...]]
    snapshot: str
    version: int

    def __init__(self, **kw: Any) -> None:
        for k, v in kw.items():
            setattr(self, k, v)


def _globs(
    cx: _Ctx, node: Any, what: str, spell: Callable[[str], str], check: Callable[[str], object]
) -> tuple[str, ...]:
    """A list of patterns in their one spelling, each checked by its compiler (line numbers)."""
    items = [spell(t) for t in str_list(cx, node, what)]
    for i, item in enumerate(items):
        try:
            check(item)
        except GlobError as exc:
            cx.fail(item_node(node, i), str(exc))
    return tuple(items)


def _topics(cx: _Ctx, node: Any, what: str) -> tuple[str, ...]:
    # Topics are compared in one spelling (`ingress.canon`): the job's is lower-cased at intake.
    return _globs(cx, node, what, canon_topic, compile_glob)


class _Ctx(Ctx):
    """Where we are in the bundle: the rule being read and the schema of its stage."""

    __slots__ = ("elements", "schema", "sets")

    def __init__(self) -> None:
        super().__init__()
        # The fields the current rule's conditions may compare (`STEP_CONTEXT` in a step rule).
        self.schema: ContextSchema = JOB_CONTEXT
        # The bundle's named sets (read before the rules, wherever they sit in the document).
        self.sets: dict[str, tuple[str, ...]] = {}
        # How many `each` / `some` enclose the condition being read: `$` is their element.
        self.elements = 0


def _element_field(name: str) -> bool:
    return name == "$" or (name.startswith("$.") and _PATH_RE.fullmatch(name[2:]) is not None)


_PATH_RE = re.compile(r"[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)*")


def _condition_field(cx: _Ctx, node: Any, name: Any) -> str:
    if not isinstance(name, str):
        cx.fail(node, f"a condition field must be a string, got `{name}`")
    if cx.schema.declares(name):
        return name
    if _element_field(name):
        if cx.elements:
            return name
        cx.fail(node, f"`{name}` is the element of `each` or `some`, and is used outside one")
    cx.fail(
        node,
        f"unknown condition operator or field `{name}` (operators: "
        f"{', '.join(_LEAF_OPS + _TREE_OPS)}; fields of a {cx.schema.stage} rule: "
        f"{cx.schema.describe()})",
    )


def _cond_value(cx: _Ctx, node: Any, what: str) -> Any:
    value = scalar(cx, node, what)
    if not isinstance(value, str | bool | int | float):
        cx.fail(node, f"{what} must be a string, number or boolean")
    return value


def _condition(cx: _Ctx, node: Any) -> Condition:
    body = mapping(cx, node, "a condition", None)
    if not body:
        cx.fail(node, "a condition must not be empty")
    if len(body) != 1 or next(iter(body)) not in _LEAF_OPS + _TREE_OPS:
        # Shorthand `{field: value, ...}` means eq on every pair (`not: {approved: true}`).
        parts = []
        for name, vnode in body.items():
            field = _condition_field(cx, vnode, name)
            parts.append(Condition("eq", field, _cond_value(cx, vnode, f"condition `{name}`")))
        return parts[0] if len(parts) == 1 else Condition("all", children=tuple(parts))
    op, vnode = next(iter(body.items()))
    if op == "exists":
        # `{exists: capability}` or `{exists: [capability, labels.env]}` (every one present).
        names = str_list(cx, vnode, "`exists`")
        parts = [
            Condition("exists", _condition_field(cx, item_node(vnode, i), name))
            for i, name in enumerate(names)
        ]
        return parts[0] if len(parts) == 1 else Condition("all", children=tuple(parts))
    if op in ("from_untrusted", "from_prompt"):
        name = string(cx, vnode, f"`{op}`")
        field = _condition_field(cx, vnode, name)
        if not (field == "params" or field.startswith("params.") or _element_field(field)):
            cx.fail(vnode, f"`{op}` applies to `params.<path>` or `$`, not `{field}`")
        return Condition(op, field)
    if op == "session_count":
        return _session_count(cx, vnode)
    if op in ("each", "some"):
        return _quantifier(cx, op, vnode)
    if op == "not":
        return Condition("not", children=(_condition(cx, vnode),))
    if op in ("all", "any"):
        items = list_nodes(cx, vnode, f"`{op}`")
        if not items:
            cx.fail(vnode, f"`{op}` needs at least one condition")
        return Condition(op, children=tuple(_condition(cx, c) for c in items))
    fields = mapping(cx, vnode, f"`{op}`", None)
    if not fields:
        cx.fail(vnode, f"`{op}` needs a field")
    if op in _STEP_ONLY and cx.schema is not STEP_CONTEXT:
        cx.fail(node, f"`{op}` applies to step rules (rules that name targets)")
    parts = []
    for name, fnode in fields.items():
        field = _condition_field(cx, fnode, name)
        if op not in ("eq", "in", "not_in"):
            parts.append(Condition(op, field, _operand(cx, op, name, field, fnode)))
            continue
        if op == "eq":
            value: Any = _cond_value(cx, fnode, f"`eq` value of `{name}`")
        else:
            if isinstance(fnode, ScalarNode):
                value = (_cond_value(cx, fnode, f"`{op}` value of `{name}`"),)
            else:
                items = list_nodes(cx, fnode, f"`{op}` value of `{name}`")
                value = tuple(_cond_value(cx, i, f"`{op}` value of `{name}`") for i in items)
        parts.append(Condition(op, field, value))
    return parts[0] if len(parts) == 1 else Condition("all", children=tuple(parts))


def _set_names(cx: _Ctx, node: Any, what: str) -> tuple[str, ...]:
    names = str_list(cx, node, what)
    for i, name in enumerate(names):
        if name not in cx.sets:
            known = ", ".join(cx.sets) or "none"
            cx.fail(item_node(node, i), f"unknown set `{name}` in {what} (sets of the bundle: {known})")
    return tuple(names)


def _operand(cx: _Ctx, op: str, name: str, field: str, node: Any) -> Any:
    """The value of `{op: {field: value}}` for the operators of section 9, validated."""
    what = f"`{op}` value of `{name}`"
    if op in _NUMBER_OPS or op in ("len_gt", "len_lt"):
        value = scalar(cx, node, what)
        if isinstance(value, bool) or not isinstance(value, int | float):
            cx.fail(node, f"{what} must be a number, got `{value}`")
        if op.startswith("len_") and (not isinstance(value, int) or value < 0):
            cx.fail(node, f"{what} must be a whole number of at least 0, got `{value}`")
        return value
    if op == "matches":
        pattern = string(cx, node, what)
        try:
            compile_re2(pattern)
        except RegexError as exc:
            cx.fail(node, f"{exc} (RE2 syntax)")
        return pattern
    if op == "glob":
        return tuple(str_list(cx, node, what))
    if op == "contains":
        return _cond_value(cx, node, what)
    if op in _SET_OPS:
        return _set_names(cx, node, what)
    if op in _DOMAIN_OPS:
        items = str_list(cx, node, what)
        for i, item in enumerate(items):
            if item not in cx.sets and "." not in item:
                cx.fail(
                    item_node(node, i),
                    f"unknown set `{item}` in {what} (a domain has a dot; sets of the bundle: "
                    f"{', '.join(cx.sets) or 'none'})",
                )
        return tuple(items)
    if op == "detects":
        if not (field == "params" or field.startswith("params.")):
            cx.fail(node, f"`detects` applies to `params.<path>`, not `{field}`")
        names = str_list(cx, node, what)
        for i, d in enumerate(names):
            if d not in STEP_DETECTORS:
                cx.fail(item_node(node, i), f"unknown detector `{d}` (known: {', '.join(STEP_DETECTORS)})")
        return tuple(names)
    cx.fail(node, f"`{op}` takes a field, not a mapping (`{{{op}: {name}}}`)")


_COUNT_OPS = ("gt", "gte", "lt", "lte", "eq")


def _session_count(cx: _Ctx, node: Any) -> Condition:
    """`session_count: {targets: [...], gt: N}`: earlier allowed steps matching the targets."""
    if cx.schema is not STEP_CONTEXT:
        cx.fail(node, "`session_count` applies to step rules (rules that name targets)")
    body = mapping(cx, node, "`session_count`", ("targets", *_COUNT_OPS))
    if "targets" not in body:
        cx.fail(node, "`session_count` needs `targets`")
    cmps = [k for k in body if k != "targets"]
    if len(cmps) != 1:
        cx.fail(node, f"`session_count` needs exactly one of {', '.join(_COUNT_OPS)}")
    targets = _targets(cx, body["targets"], "`session_count.targets`")
    n = scalar(cx, body[cmps[0]], f"`session_count.{cmps[0]}`")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        cx.fail(body[cmps[0]], f"`session_count.{cmps[0]}` must be a whole number of at least 0")
    return Condition("session_count", value=(targets, cmps[0], n))


def _quantifier(cx: _Ctx, op: str, node: Any) -> Condition:
    """`each: {field: params.to, any: [...]}` (or `all:`); `some:` alike."""
    body = mapping(cx, node, f"`{op}`", ("field", "any", "all"))
    if "field" not in body:
        cx.fail(node, f"`{op}` needs `field`")
    quants = [k for k in ("any", "all") if k in body]
    if len(quants) != 1:
        cx.fail(node, f"`{op}` needs exactly one of `any` and `all`")
    field = _condition_field(cx, body["field"], string(cx, body["field"], f"`{op}.field`"))
    items = list_nodes(cx, body[quants[0]], f"`{op}.{quants[0]}`")
    if not items:
        cx.fail(body[quants[0]], f"`{op}.{quants[0]}` needs at least one condition")
    cx.elements += 1
    try:
        children = tuple(_condition(cx, c) for c in items)
    finally:
        cx.elements -= 1
    return Condition(op, field, quants[0], children)


def _sets(cx: _Ctx, node: Any) -> dict[str, tuple[str, ...]]:
    """`sets: {name: [strings]}`: named lists the rules' set and domain operators refer to."""
    out: dict[str, tuple[str, ...]] = {}
    for name, vnode in mapping(cx, node, "`sets`", None).items():
        if not _SET_NAME.fullmatch(name):
            cx.fail(vnode, f"bad set name `{name}` (use letters, digits, `_`, `.` and `-`)")
        if isinstance(vnode, ScalarNode) and plain(vnode) is None:
            out[name] = ()
            continue
        items = list_nodes(cx, vnode, f"set `{name}`")
        out[name] = tuple(string(cx, i, f"each item of set `{name}`", allow_numbers=True) for i in items)
    return out


def _labels(cx: _Ctx, node: Any, what: str) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for key, vnode in mapping(cx, node, what, None).items():
        if not LABEL_KEY.fullmatch(key):
            cx.fail(vnode, f"bad label key `{key}`")
        values = str_list(cx, vnode, f"label `{key}`", allow_numbers=True)
        out[key.lower()] = tuple(canon_value(v) for v in values)  # as the job's, at intake
    return out


def _targets(cx: _Ctx, node: Any, what: str) -> tuple[str, ...]:
    # Targets are compared lower-cased (`domain.steps.target_of`), as topics are.
    return _globs(cx, node, what, str.lower, compile_target)


def _capabilities(cx: _Ctx, node: Any, what: str) -> tuple[str, ...]:
    return _globs(cx, node, what, canon_capability, capability_glob)


def _match(cx: _Ctx, node: Any, target: Any = None) -> Match:
    body = mapping(cx, node, "`match`", _MATCH_KEYS) if node is not None else {}
    if target is not None:
        if "targets" in body:
            cx.fail(target, "give `target` or `match.targets`, not both")
        body["targets"] = target
    kw: dict[str, Any] = {}
    for key, vnode in body.items():
        if key == "topics":
            kw[key] = _topics(cx, vnode, "`match.topics`")
        elif key == "targets":
            kw[key] = _targets(cx, vnode, "`target`" if vnode is target else "`match.targets`")
        elif key == "labels":
            kw[key] = _labels(cx, vnode, "`match.labels`")
        elif key == "capabilities":
            kw[key] = _capabilities(cx, vnode, "`match.capabilities`")
        else:
            kw[key] = tuple(str_list(cx, vnode, f"`match.{key}`"))
    return Match(**kw)


def _remediation(cx: _Ctx, node: Any) -> Remediation:
    body = mapping(cx, node, "a remediation", _REMEDIATION_KEYS)
    if "id" not in body:
        cx.fail(node, "a remediation needs an `id`")
    rid = string(cx, body["id"], "remediation `id`")
    if not _ID.fullmatch(rid):
        cx.fail(body["id"], f"bad remediation id `{rid}` (use [a-z0-9][a-z0-9._-]*)")
    sets: dict[str, Any] = {}
    if "set" in body:
        for key, vnode in mapping(cx, body["set"], "remediation `set`", _REMEDIATION_SET_KEYS).items():
            if key == "risk_tags":
                sets[key] = str_list(cx, vnode, "`set.risk_tags`")
            else:
                sets[key] = string(cx, vnode, f"`set.{key}`")
                if key == "topic" and not is_valid_topic(sets[key]):
                    cx.fail(vnode, f"`set.topic` must be a topic, not a pattern: `{sets[key]}`")
    set_labels: dict[str, str] = {}
    if "set_labels" in body:
        for key, vnode in mapping(cx, body["set_labels"], "`set_labels`", None).items():
            set_labels[key.lower()] = canon_value(
                string(cx, vnode, f"`set_labels.{key}`", allow_numbers=True)
            )
    desc = string(cx, body["description"], "remediation `description`") if "description" in body else ""
    return Remediation(id=rid, description=desc, set=sets, set_labels=set_labels)


def _peek_id(cx: _Ctx, node: Any) -> None:
    """Read the id first so that every later error (unknown keys too) names the rule."""
    for knode, vnode in node.value:
        if isinstance(knode, ScalarNode) and knode.value == "id":
            value = plain(vnode)
            if isinstance(value, str):
                cx.rule_id = value


def _rule(cx: _Ctx, node: Any, seen: set[str]) -> Rule:
    cx.rule_id = None
    if not isinstance(node, MappingNode):
        cx.fail(node, "each rule must be a mapping")
    _peek_id(cx, node)
    body = mapping(cx, node, "a rule", _RULE_KEYS)
    for alias, canonical in (("action", "decision"), ("condition", "conditions")):
        if alias in body and canonical in body:
            cx.fail(body[alias], f"give `{alias}` or `{canonical}`, not both")
    if "action" in body:
        body["decision"] = body.pop("action")
    if "condition" in body:
        cond = body.pop("condition")
        body["conditions"] = as_sequence(cond)  # one condition is a list of one
    if "id" not in body:
        cx.fail(node, "a rule needs `id`")
    if "decision" not in body:
        cx.fail(node, "a rule needs `decision` (or `action`)")
    rid = string(cx, body["id"], "rule `id`")
    if not _ID.fullmatch(rid):
        cx.fail(body["id"], f"bad rule id `{rid}` (use [a-z0-9][a-z0-9._-]*)")
    if rid in seen or rid == "default":
        cx.fail(body["id"], f"duplicate rule id `{rid}`" if rid in seen else "`default` is reserved")
    seen.add(rid)
    decision = choice(cx, body["decision"], "decision", DECISIONS)
    reason = string(cx, body["reason"], "`reason`") if "reason" in body else f"matched rule `{rid}`"
    if "match" in body or "target" in body:
        match = _match(cx, body.get("match"), body.get("target"))
    else:
        match = Match()
    cx.schema = STEP_CONTEXT if match.targets else JOB_CONTEXT
    conditions: tuple[Condition, ...] = ()
    if "conditions" in body:
        conditions = tuple(_condition(cx, c) for c in list_nodes(cx, body["conditions"], "`conditions`"))
    cx.schema = JOB_CONTEXT
    remediations: tuple[Remediation, ...] = ()
    if "remediations" in body:
        items = list_nodes(cx, body["remediations"], "`remediations`")
        remediations = tuple(_remediation(cx, r) for r in items)
        rem_ids: set[str] = set()
        for rem, rnode in zip(remediations, items, strict=True):
            if rem.id in rem_ids:
                cx.fail(rnode, f"duplicate remediation id `{rem.id}`")
            rem_ids.add(rem.id)
    ttl: int | None = None
    if "approval_ttl" in body:
        if decision != REQUIRE_APPROVAL:
            cx.fail(body["approval_ttl"], "`approval_ttl` applies only to require_approval rules")
        raw = scalar(cx, body["approval_ttl"], "`approval_ttl`")
        try:
            ttl = parse_duration(raw)
        except ValueError as exc:
            cx.fail(body["approval_ttl"], str(exc))
    audit = boolean(cx, body["audit"], "`audit`") if "audit" in body else True
    desc = string(cx, body["description"], "`description`") if "description" in body else ""
    return Rule(
        id=rid,
        decision=decision,
        reason=reason,
        match=match,
        conditions=conditions,
        remediations=remediations,
        approval_ttl=ttl,
        audit=audit,
        description=desc,
        line=node.start_mark.line + 1,
    )


def _output_rule(cx: _Ctx, node: Any, seen: set[str]) -> OutputRule:
    cx.rule_id = None
    if isinstance(node, MappingNode):
        _peek_id(cx, node)
    body = mapping(cx, node, "an output rule", _OUTPUT_KEYS)
    for required in ("id", "detectors", "decision"):
        if required not in body:
            cx.fail(node, f"an output rule needs `{required}`")
    rid = string(cx, body["id"], "output rule `id`")
    cx.rule_id = rid
    if not _ID.fullmatch(rid):
        cx.fail(body["id"], f"bad rule id `{rid}` (use [a-z0-9][a-z0-9._-]*)")
    if rid in seen:
        cx.fail(body["id"], f"duplicate rule id `{rid}`")
    seen.add(rid)
    detectors = str_list(cx, body["detectors"], "`detectors`")
    for i, d in enumerate(detectors):
        if d not in DETECTORS:
            cx.fail(
                item_node(body["detectors"], i),
                f"unknown detector `{d}` (known: {', '.join(DETECTORS)})",
            )
    decision = choice(cx, body["decision"], "output decision", OUTPUT_DECISIONS)
    reason = string(cx, body["reason"], "`reason`") if "reason" in body else ""
    topics = _topics(cx, body["topics"], "`topics`") if "topics" in body else ()
    targets = _targets(cx, body["targets"], "`targets`") if "targets" in body else ()
    return OutputRule(
        id=rid,
        detectors=tuple(detectors),
        decision=decision,
        reason=reason,
        topics=topics,
        targets=targets,
        line=node.start_mark.line + 1,
    )


def _requirements(cx: _Ctx, node: Any) -> tuple[Requirement, ...]:
    """`require: [{topics: [...], fields: [meta.capability, labels.env]}]`."""
    out: list[Requirement] = []
    for item in list_nodes(cx, node, "`require`"):
        body = mapping(cx, item, "a `require` entry", _REQUIRE_KEYS)
        if "topics" not in body or "fields" not in body:
            cx.fail(item, "a `require` entry needs `topics` and `fields`")
        topics = _topics(cx, body["topics"], "`require.topics`")
        fields = str_list(cx, body["fields"], "`require.fields`")
        for i, name in enumerate(fields):
            ok = name == "prompt" or (name.startswith("meta.") and name[5:] in _REQUIRE_META)
            ok = ok or (name.startswith("labels.") and bool(LABEL_KEY.fullmatch(name[7:])))
            if not ok:
                cx.fail(
                    item_node(body["fields"], i),
                    f"unknown required field `{name}` (expected prompt, labels.<key> or "
                    f"meta.<key> with key one of {', '.join(_REQUIRE_META)})",
                )
        line = item.start_mark.line + 1
        out.append(Requirement(topics=topics, fields=tuple(dict.fromkeys(fields)), line=line))
    return tuple(out)


def _classifiers(cx: _Ctx, node: Any) -> tuple[tuple[Any, ...], Classifier]:
    """The bundle's classifier patterns, compiled into the ingress classifier here (not only at
    install), so that a bad regex is an error of the bundle wherever it is loaded."""
    items = list_nodes(cx, node, "`classifiers`")
    patterns = [plain(c) for c in items]
    for c, cnode in zip(patterns, items, strict=True):
        if not isinstance(c, dict):
            cx.fail(cnode, "each classifier pattern must be a mapping")
        try:
            Pattern.from_mapping(c)
        except BadRequest as exc:
            cx.fail(cnode, f"bad classifier pattern: {exc.message}")
    try:
        classifier = DEFAULT_CLASSIFIER.extend(patterns)
    except BadRequest as exc:  # a duplicate name (each pattern alone was fine)
        cx.fail(node, f"bad classifier pattern: {exc.message}")
    return tuple(patterns), classifier


def parse_bundle(text: str | bytes) -> Bundle:
    """Parse and validate `text`; raises `PolicyError` naming the line (and rule) at fault."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise PolicyError("the policy is not UTF-8 text") from None
    root = compose(text)
    cx = _Ctx()
    body = mapping(cx, root, "the policy", _TOP_KEYS)
    if "version" in body:  # the seeds' snippets omit it: absent means 1
        version = scalar(cx, body["version"], "`version`")
        if version != 1 or isinstance(version, bool | float):
            cx.fail(body["version"], f"unsupported policy version `{version}` (expected 1)")
    name = string(cx, body["name"], "`name`", allow_numbers=True) if "name" in body else "unnamed"
    default = "deny"
    if "default_decision" in body:
        default = choice(cx, body["default_decision"], "default_decision", DECISIONS)
    fail_mode = choice(cx, body["fail_mode"], "fail_mode", FAIL_MODES) if "fail_mode" in body else "closed"
    overrides: list[FailModeOverride] = []
    if "fail_mode_overrides" in body:
        for item in list_nodes(cx, body["fail_mode_overrides"], "`fail_mode_overrides`"):
            ob = mapping(cx, item, "a fail mode override", _OVERRIDE_KEYS)
            if "topics" not in ob or "fail_mode" not in ob:
                cx.fail(item, "a fail mode override needs `topics` and `fail_mode`")
            overrides.append(
                FailModeOverride(
                    topics=_topics(cx, ob["topics"], "`topics`"),
                    fail_mode=choice(cx, ob["fail_mode"], "fail_mode", FAIL_MODES),
                )
            )
    if "sets" in body:
        cx.sets = _sets(cx, body["sets"])
    seen: set[str] = set()
    rules: list[Rule] = []
    if "rules" in body and not (isinstance(body["rules"], ScalarNode) and plain(body["rules"]) is None):
        rules = [_rule(cx, r, seen) for r in list_nodes(cx, body["rules"], "`rules`")]
    cx.rule_id = None
    output_rules: list[OutputRule] = []
    if "output_rules" in body:
        items = list_nodes(cx, body["output_rules"], "`output_rules`")
        output_rules = [_output_rule(cx, r, seen) for r in items]
    cx.rule_id = None
    require = _requirements(cx, body["require"]) if "require" in body else ()
    classifiers: tuple[Any, ...] = ()
    classifier = DEFAULT_CLASSIFIER
    if "classifiers" in body:
        classifiers, classifier = _classifiers(cx, body["classifiers"])
    # The adapter catalog (DESIGN.md section 10) is part of the bundle's text, so its snapshot
    # and its signature cover it like any rule.
    catalog = read_catalog(cx, body["adapters"]) if "adapters" in body else Catalog()
    description = string(cx, body["description"], "`description`") if "description" in body else ""
    canonical = canonical_json(plain(root))
    return Bundle(
        version=1,
        name=name,
        description=description,
        default_decision=default,
        fail_mode=fail_mode,
        fail_mode_overrides=tuple(overrides),
        rules=tuple(rules),
        sets=cx.sets,
        output_rules=tuple(output_rules),
        require=require,
        classifiers=classifiers,
        classifier=classifier,
        catalog=catalog,
        canonical=canonical,
        snapshot=hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
    )

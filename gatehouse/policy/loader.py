"""YAML/JSON text -> validated, frozen policy model.

Validation walks the YAML *node* tree rather than plain Python values, so every error can name
the line it comes from. Nothing is built until the whole document validates: a broken bundle
never half-loads. JSON is read by the same path (JSON is YAML for our purposes).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, NoReturn

import yaml

from gatehouse.errors import PolicyError
from gatehouse.policy._durations import parse_duration
from gatehouse.policy.glob import GlobError, compile_glob, is_valid_topic
from gatehouse.policy.model import (
    CONTEXT_FIELDS,
    DECISIONS,
    DETECTORS,
    FAIL_MODES,
    OUTPUT_DECISIONS,
    REQUIRE_APPROVAL,
    Condition,
    FailModeOverride,
    Match,
    OutputRule,
    Remediation,
    Rule,
)

__all__ = ["Bundle", "canonical_json", "parse_bundle"]

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_LABEL_KEY = re.compile(r"^[A-Za-z0-9_.\-/]{1,128}$")

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
)
_MATCH_KEYS = ("topics", "labels", "capabilities", "tenants", "risk_tags", "requester_roles")
_REMEDIATION_KEYS = ("id", "description", "set", "set_labels")
_REMEDIATION_SET_KEYS = ("topic", "capability", "risk_tags", "prompt")
_OUTPUT_KEYS = ("id", "detectors", "decision", "reason", "topics")
_OVERRIDE_KEYS = ("topics", "fail_mode")
_LEAF_OPS = ("eq", "in", "not_in")
_TREE_OPS = ("not", "all", "any")

_scalar_constructor = yaml.constructor.SafeConstructor()


class Bundle:
    """Everything the loader validated, ready for the compiler."""

    __slots__ = (
        "canonical",
        "classifiers",
        "default_decision",
        "description",
        "fail_mode",
        "fail_mode_overrides",
        "name",
        "output_rules",
        "rules",
        "snapshot",
        "version",
    )

    # Declared for the type checker; `__init__` sets them all.
    canonical: str
    classifiers: tuple[Any, ...]
    default_decision: str
    description: str
    fail_mode: str
    fail_mode_overrides: tuple[FailModeOverride, ...]
    name: str
    output_rules: tuple[OutputRule, ...]
    rules: tuple[Rule, ...]
    snapshot: str
    version: int

    def __init__(self, **kw: Any) -> None:
        for k, v in kw.items():
            setattr(self, k, v)


def canonical_json(data: Any) -> str:
    """The canonical text of a bundle: sorted keys, no whitespace, UTF-8."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


class _Ctx:
    """Where we are in the document, for error messages."""

    __slots__ = ("rule_id",)

    def __init__(self) -> None:
        self.rule_id: str | None = None

    def fail(self, node: Any, message: str) -> NoReturn:
        line = node.start_mark.line + 1 if node is not None else None
        raise PolicyError(message, line=line, rule_id=self.rule_id)


def _plain(node: Any) -> Any:
    if isinstance(node, yaml.MappingNode):
        return {_plain(k): _plain(v) for k, v in node.value}
    if isinstance(node, yaml.SequenceNode):
        return [_plain(v) for v in node.value]
    value = _scalar_constructor.construct_object(node)
    # The shared constructor memoises every node it builds; forget it, or each load leaks.
    _scalar_constructor.constructed_objects.pop(node, None)
    return value


def _mapping(cx: _Ctx, node: Any, what: str, allowed: tuple[str, ...] | None) -> dict[str, Any]:
    if not isinstance(node, yaml.MappingNode):
        cx.fail(node, f"{what} must be a mapping")
    out: dict[str, Any] = {}
    for knode, vnode in node.value:
        key = _plain(knode) if isinstance(knode, yaml.ScalarNode) else None
        if not isinstance(key, str):
            cx.fail(knode, f"{what} keys must be strings")
        if key in out:
            cx.fail(knode, f"duplicate key `{key}` in {what}")
        if allowed is not None and key not in allowed:
            cx.fail(knode, f"unknown key `{key}` in {what} (expected one of {', '.join(allowed)})")
        out[key] = vnode
    return out


def _scalar(cx: _Ctx, node: Any, what: str) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        cx.fail(node, f"{what} must be a scalar")
    return _plain(node)


def _str(cx: _Ctx, node: Any, what: str, *, allow_numbers: bool = False) -> str:
    value = _scalar(cx, node, what)
    if allow_numbers and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        hint = " (quote it)" if isinstance(value, bool | int | float) or value is None else ""
        cx.fail(node, f"{what} must be a string, got `{value}`{hint}")
    return value


def _str_list(cx: _Ctx, node: Any, what: str, *, allow_numbers: bool = False) -> list[str]:
    """A list of strings; a single string is accepted as a list of one."""
    if isinstance(node, yaml.ScalarNode):
        return [_str(cx, node, what, allow_numbers=allow_numbers)]
    if not isinstance(node, yaml.SequenceNode):
        cx.fail(node, f"{what} must be a list of strings")
    if not node.value:
        cx.fail(node, f"{what} must not be empty (omit it to match anything)")
    return [_str(cx, item, f"each item of {what}", allow_numbers=allow_numbers) for item in node.value]


def _bool(cx: _Ctx, node: Any, what: str) -> bool:
    value = _scalar(cx, node, what)
    if not isinstance(value, bool):
        cx.fail(node, f"{what} must be true or false, got `{value}`")
    return value


def _choice(cx: _Ctx, node: Any, what: str, choices: tuple[str, ...]) -> str:
    value = _scalar(cx, node, what)
    if value not in choices:
        cx.fail(node, f"bad {what} `{value}` (expected one of {', '.join(choices)})")
    return str(value)


def _item_node(node: Any, i: int) -> Any:
    """The node of item `i` of a list (or the node itself for a one-string shorthand)."""
    return node.value[i] if isinstance(node, yaml.SequenceNode) else node


def _topics(cx: _Ctx, node: Any, what: str) -> tuple[str, ...]:
    items = _str_list(cx, node, what)
    for i, item in enumerate(items):
        try:
            compile_glob(item)
        except GlobError as exc:
            cx.fail(_item_node(node, i), str(exc))
    return tuple(items)


def _list_nodes(cx: _Ctx, node: Any, what: str) -> list[Any]:
    if not isinstance(node, yaml.SequenceNode):
        cx.fail(node, f"{what} must be a list")
    return list(node.value)


def _condition_field(cx: _Ctx, node: Any, name: str) -> str:
    if name in CONTEXT_FIELDS and name != "labels":
        return name
    if name.startswith("labels.") and _LABEL_KEY.fullmatch(name[7:]):
        return name
    cx.fail(
        node,
        f"unknown condition operator or field `{name}` (operators: "
        f"{', '.join(_LEAF_OPS + _TREE_OPS)}; fields: "
        f"{', '.join(f for f in CONTEXT_FIELDS if f != 'labels')}, labels.<key>)",
    )


def _cond_value(cx: _Ctx, node: Any, what: str) -> Any:
    value = _scalar(cx, node, what)
    if not isinstance(value, str | bool | int | float):
        cx.fail(node, f"{what} must be a string, number or boolean")
    return value


def _condition(cx: _Ctx, node: Any) -> Condition:
    body = _mapping(cx, node, "a condition", None)
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
    if op == "not":
        return Condition("not", children=(_condition(cx, vnode),))
    if op in ("all", "any"):
        items = _list_nodes(cx, vnode, f"`{op}`")
        if not items:
            cx.fail(vnode, f"`{op}` needs at least one condition")
        return Condition(op, children=tuple(_condition(cx, c) for c in items))
    fields = _mapping(cx, vnode, f"`{op}`", None)
    if not fields:
        cx.fail(vnode, f"`{op}` needs a field")
    parts = []
    for name, fnode in fields.items():
        field = _condition_field(cx, fnode, name)
        if op == "eq":
            value: Any = _cond_value(cx, fnode, f"`eq` value of `{name}`")
        else:
            if isinstance(fnode, yaml.ScalarNode):
                value = (_cond_value(cx, fnode, f"`{op}` value of `{name}`"),)
            else:
                items = _list_nodes(cx, fnode, f"`{op}` value of `{name}`")
                value = tuple(_cond_value(cx, i, f"`{op}` value of `{name}`") for i in items)
        parts.append(Condition(op, field, value))
    return parts[0] if len(parts) == 1 else Condition("all", children=tuple(parts))


def _labels(cx: _Ctx, node: Any, what: str) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for key, vnode in _mapping(cx, node, what, None).items():
        if not _LABEL_KEY.fullmatch(key):
            cx.fail(vnode, f"bad label key `{key}`")
        out[key] = tuple(_str_list(cx, vnode, f"label `{key}`", allow_numbers=True))
    return out


def _match(cx: _Ctx, node: Any) -> Match:
    body = _mapping(cx, node, "`match`", _MATCH_KEYS)
    kw: dict[str, Any] = {}
    for key, vnode in body.items():
        if key == "topics":
            kw[key] = _topics(cx, vnode, "`match.topics`")
        elif key == "labels":
            kw[key] = _labels(cx, vnode, "`match.labels`")
        else:
            kw[key] = tuple(_str_list(cx, vnode, f"`match.{key}`"))
    return Match(**kw)


def _remediation(cx: _Ctx, node: Any) -> Remediation:
    body = _mapping(cx, node, "a remediation", _REMEDIATION_KEYS)
    if "id" not in body:
        cx.fail(node, "a remediation needs an `id`")
    rid = _str(cx, body["id"], "remediation `id`")
    if not _ID.fullmatch(rid):
        cx.fail(body["id"], f"bad remediation id `{rid}` (use [a-z0-9][a-z0-9._-]*)")
    sets: dict[str, Any] = {}
    if "set" in body:
        for key, vnode in _mapping(cx, body["set"], "remediation `set`", _REMEDIATION_SET_KEYS).items():
            if key == "risk_tags":
                sets[key] = _str_list(cx, vnode, "`set.risk_tags`")
            else:
                sets[key] = _str(cx, vnode, f"`set.{key}`")
                if key == "topic" and not is_valid_topic(sets[key]):
                    cx.fail(vnode, f"`set.topic` must be a topic, not a pattern: `{sets[key]}`")
    set_labels: dict[str, str] = {}
    if "set_labels" in body:
        for key, vnode in _mapping(cx, body["set_labels"], "`set_labels`", None).items():
            set_labels[key] = _str(cx, vnode, f"`set_labels.{key}`", allow_numbers=True)
    desc = _str(cx, body["description"], "remediation `description`") if "description" in body else ""
    return Remediation(id=rid, description=desc, set=sets, set_labels=set_labels)


def _peek_id(cx: _Ctx, node: Any) -> None:
    """Read the id first so that every later error (unknown keys too) names the rule."""
    for knode, vnode in node.value:
        if isinstance(knode, yaml.ScalarNode) and knode.value == "id":
            value = _plain(vnode)
            if isinstance(value, str):
                cx.rule_id = value


def _rule(cx: _Ctx, node: Any, seen: set[str]) -> Rule:
    cx.rule_id = None
    if not isinstance(node, yaml.MappingNode):
        cx.fail(node, "each rule must be a mapping")
    _peek_id(cx, node)
    body = _mapping(cx, node, "a rule", _RULE_KEYS)
    for required in ("id", "decision"):
        if required not in body:
            cx.fail(node, f"a rule needs `{required}`")
    rid = _str(cx, body["id"], "rule `id`")
    if not _ID.fullmatch(rid):
        cx.fail(body["id"], f"bad rule id `{rid}` (use [a-z0-9][a-z0-9._-]*)")
    if rid in seen or rid == "default":
        cx.fail(body["id"], f"duplicate rule id `{rid}`" if rid in seen else "`default` is reserved")
    seen.add(rid)
    decision = _choice(cx, body["decision"], "decision", DECISIONS)
    reason = _str(cx, body["reason"], "`reason`") if "reason" in body else f"matched rule `{rid}`"
    match = _match(cx, body["match"]) if "match" in body else Match()
    conditions: tuple[Condition, ...] = ()
    if "conditions" in body:
        conditions = tuple(_condition(cx, c) for c in _list_nodes(cx, body["conditions"], "`conditions`"))
    remediations: tuple[Remediation, ...] = ()
    if "remediations" in body:
        items = _list_nodes(cx, body["remediations"], "`remediations`")
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
        raw = _scalar(cx, body["approval_ttl"], "`approval_ttl`")
        try:
            ttl = parse_duration(raw)
        except ValueError as exc:
            cx.fail(body["approval_ttl"], str(exc))
    audit = _bool(cx, body["audit"], "`audit`") if "audit" in body else True
    desc = _str(cx, body["description"], "`description`") if "description" in body else ""
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
    if isinstance(node, yaml.MappingNode):
        _peek_id(cx, node)
    body = _mapping(cx, node, "an output rule", _OUTPUT_KEYS)
    for required in ("id", "detectors", "decision"):
        if required not in body:
            cx.fail(node, f"an output rule needs `{required}`")
    rid = _str(cx, body["id"], "output rule `id`")
    cx.rule_id = rid
    if not _ID.fullmatch(rid):
        cx.fail(body["id"], f"bad rule id `{rid}` (use [a-z0-9][a-z0-9._-]*)")
    if rid in seen:
        cx.fail(body["id"], f"duplicate rule id `{rid}`")
    seen.add(rid)
    detectors = _str_list(cx, body["detectors"], "`detectors`")
    for i, d in enumerate(detectors):
        if d not in DETECTORS:
            cx.fail(
                _item_node(body["detectors"], i),
                f"unknown detector `{d}` (known: {', '.join(DETECTORS)})",
            )
    decision = _choice(cx, body["decision"], "output decision", OUTPUT_DECISIONS)
    reason = _str(cx, body["reason"], "`reason`") if "reason" in body else ""
    topics = _topics(cx, body["topics"], "`topics`") if "topics" in body else ()
    return OutputRule(
        id=rid,
        detectors=tuple(detectors),
        decision=decision,
        reason=reason,
        topics=topics,
        line=node.start_mark.line + 1,
    )


def _parse_root(text: str) -> Any:
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise PolicyError(f"not valid YAML or JSON: {exc.problem or exc}", line=line) from None
    except yaml.YAMLError as exc:
        raise PolicyError(f"not valid YAML or JSON: {exc}") from None
    if node is None:
        raise PolicyError("the policy is empty")
    return node


def parse_bundle(text: str | bytes) -> Bundle:
    """Parse and validate `text`; raises `PolicyError` naming the line (and rule) at fault."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise PolicyError("the policy is not UTF-8 text") from None
    root = _parse_root(text)
    cx = _Ctx()
    body = _mapping(cx, root, "the policy", _TOP_KEYS)
    if "version" not in body:
        cx.fail(root, "the policy needs `version: 1`")
    version = _scalar(cx, body["version"], "`version`")
    if version != 1 or isinstance(version, bool | float):
        cx.fail(body["version"], f"unsupported policy version `{version}` (expected 1)")
    name = _str(cx, body["name"], "`name`", allow_numbers=True) if "name" in body else "unnamed"
    default = "deny"
    if "default_decision" in body:
        default = _choice(cx, body["default_decision"], "default_decision", DECISIONS)
    fail_mode = _choice(cx, body["fail_mode"], "fail_mode", FAIL_MODES) if "fail_mode" in body else "closed"
    overrides: list[FailModeOverride] = []
    if "fail_mode_overrides" in body:
        for item in _list_nodes(cx, body["fail_mode_overrides"], "`fail_mode_overrides`"):
            ob = _mapping(cx, item, "a fail mode override", _OVERRIDE_KEYS)
            if "topics" not in ob or "fail_mode" not in ob:
                cx.fail(item, "a fail mode override needs `topics` and `fail_mode`")
            overrides.append(
                FailModeOverride(
                    topics=_topics(cx, ob["topics"], "`topics`"),
                    fail_mode=_choice(cx, ob["fail_mode"], "fail_mode", FAIL_MODES),
                )
            )
    seen: set[str] = set()
    rules: list[Rule] = []
    if "rules" in body and not (isinstance(body["rules"], yaml.ScalarNode) and _plain(body["rules"]) is None):
        rules = [_rule(cx, r, seen) for r in _list_nodes(cx, body["rules"], "`rules`")]
    cx.rule_id = None
    output_rules: list[OutputRule] = []
    if "output_rules" in body:
        items = _list_nodes(cx, body["output_rules"], "`output_rules`")
        output_rules = [_output_rule(cx, r, seen) for r in items]
    cx.rule_id = None
    classifiers: list[Any] = []
    if "classifiers" in body:
        # Validated by `gatehouse.ingress` when the service builds its classifier; here only shape.
        classifiers = [_plain(c) for c in _list_nodes(cx, body["classifiers"], "`classifiers`")]
        for c, cnode in zip(classifiers, body["classifiers"].value, strict=True):
            if not isinstance(c, dict):
                cx.fail(cnode, "each classifier pattern must be a mapping")
    description = _str(cx, body["description"], "`description`") if "description" in body else ""
    canonical = canonical_json(_plain(root))
    return Bundle(
        version=1,
        name=name,
        description=description,
        default_decision=default,
        fail_mode=fail_mode,
        fail_mode_overrides=tuple(overrides),
        rules=tuple(rules),
        output_rules=tuple(output_rules),
        classifiers=tuple(classifiers),
        canonical=canonical,
        snapshot=hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
    )

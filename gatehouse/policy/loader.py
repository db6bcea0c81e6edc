"""YAML/JSON text -> validated, frozen policy model.

Validation walks the YAML *node* tree rather than plain Python values, so every error can name
the line it comes from. Nothing is built until the whole document validates: a broken bundle
never half-loads. JSON is read by the same path (JSON is YAML for our purposes).

Every check the server's install runs lives here, so `gatehouse policy check` and
`PUT /api/v1/policy` judge a bundle alike: that includes compiling the bundle's `classifiers`
into the ingress classifier (a regex that does not compile is a load error with its line).

Two spellings of a rule load to the same `Rule`: the canonical one (`decision`, `match`,
`conditions`) and the seeds' `{id, target, condition, action, audit}` form, in which `target`
(a string or a list) is `match.targets`, `condition` (one condition or a list) is `conditions`
and `action` is `decision`. `canonical_data` writes a loaded bundle back in the canonical form.
A document without `version` is version 1.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, NoReturn

import yaml

from gatehouse.errors import BadRequest, PolicyError
from gatehouse.ingress import DEFAULT_CLASSIFIER, Classifier, Pattern
from gatehouse.policy._durations import parse_duration
from gatehouse.policy.glob import GlobError, capability_glob, compile_glob, compile_target, is_valid_topic
from gatehouse.policy.model import (
    CONTEXT_FIELDS,
    DECISIONS,
    DETECTORS,
    FAIL_MODES,
    OUTPUT_DECISIONS,
    REQUIRE_APPROVAL,
    STEP_FIELDS,
    Condition,
    FailModeOverride,
    Match,
    OutputRule,
    Remediation,
    Requirement,
    Rule,
)

__all__ = ["Bundle", "canonical_data", "canonical_json", "parse_bundle"]

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
    "require",
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
_OUTPUT_KEYS = ("id", "detectors", "decision", "reason", "topics")
_OVERRIDE_KEYS = ("topics", "fail_mode")
_REQUIRE_KEYS = ("topics", "fields")
_LEAF_OPS = ("eq", "in", "not_in", "exists")
_TREE_OPS = ("not", "all", "any")
# Fields of a job body a `require` entry may name: the prompt, a meta key, or a label.
_REQUIRE_META = ("capability", "risk_tags", "source", "trace_id", "session_id", "description")

_scalar_constructor = yaml.constructor.SafeConstructor()


class Bundle:
    """Everything the loader validated, ready for the compiler."""

    __slots__ = (
        "canonical",
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
        "snapshot",
        "version",
    )

    # Declared for the type checker; `__init__` sets them all.
    canonical: str
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

    __slots__ = ("rule_id", "step")

    def __init__(self) -> None:
        self.rule_id: str | None = None
        # True while reading a step rule: its conditions may name the step's fields too.
        self.step = False

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


_PATH = re.compile(r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")


def _condition_field(cx: _Ctx, node: Any, name: Any) -> str:
    if not isinstance(name, str):
        cx.fail(node, f"a condition field must be a string, got `{name}`")
    if name in CONTEXT_FIELDS and name != "labels":
        return name
    if name.startswith("labels.") and _LABEL_KEY.fullmatch(name[7:]):
        return name
    if cx.step:
        # A step rule reads the tool call too (DESIGN.md section 9).
        if name in STEP_FIELDS:
            return name
        for root in ("params.", "session."):
            if name.startswith(root) and _PATH.fullmatch(name[len(root) :]):
                return name
    step_fields = f", {', '.join(STEP_FIELDS)}, params.<path>, session.<name>" if cx.step else ""
    cx.fail(
        node,
        f"unknown condition operator or field `{name}` (operators: "
        f"{', '.join(_LEAF_OPS + _TREE_OPS)}; fields: "
        f"{', '.join(f for f in CONTEXT_FIELDS if f != 'labels')}, labels.<key>{step_fields})",
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
    if op == "exists":
        # `{exists: capability}` or `{exists: [capability, labels.env]}` (every one present).
        names = _str_list(cx, vnode, "`exists`")
        parts = [
            Condition("exists", _condition_field(cx, _item_node(vnode, i), name))
            for i, name in enumerate(names)
        ]
        return parts[0] if len(parts) == 1 else Condition("all", children=tuple(parts))
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


def _targets(cx: _Ctx, node: Any, what: str) -> tuple[str, ...]:
    items = _str_list(cx, node, what)
    for i, item in enumerate(items):
        try:
            compile_target(item)
        except GlobError as exc:
            cx.fail(_item_node(node, i), str(exc))
    return tuple(items)


def _capabilities(cx: _Ctx, node: Any, what: str) -> tuple[str, ...]:
    items = _str_list(cx, node, what)
    for i, item in enumerate(items):
        try:
            capability_glob(item)
        except GlobError as exc:
            cx.fail(_item_node(node, i), str(exc))
    return tuple(items)


def _match(cx: _Ctx, node: Any, target: Any = None) -> Match:
    body = _mapping(cx, node, "`match`", _MATCH_KEYS) if node is not None else {}
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
    for alias, canonical in (("action", "decision"), ("condition", "conditions")):
        if alias in body and canonical in body:
            cx.fail(body[alias], f"give `{alias}` or `{canonical}`, not both")
    if "action" in body:
        body["decision"] = body.pop("action")
    if "condition" in body:
        cond = body.pop("condition")
        if not isinstance(cond, yaml.SequenceNode):  # one condition is a list of one
            cond = yaml.SequenceNode("tag:yaml.org,2002:seq", [cond], cond.start_mark, cond.end_mark)
        body["conditions"] = cond
    if "id" not in body:
        cx.fail(node, "a rule needs `id`")
    if "decision" not in body:
        cx.fail(node, "a rule needs `decision` (or `action`)")
    rid = _str(cx, body["id"], "rule `id`")
    if not _ID.fullmatch(rid):
        cx.fail(body["id"], f"bad rule id `{rid}` (use [a-z0-9][a-z0-9._-]*)")
    if rid in seen or rid == "default":
        cx.fail(body["id"], f"duplicate rule id `{rid}`" if rid in seen else "`default` is reserved")
    seen.add(rid)
    decision = _choice(cx, body["decision"], "decision", DECISIONS)
    reason = _str(cx, body["reason"], "`reason`") if "reason" in body else f"matched rule `{rid}`"
    if "match" in body or "target" in body:
        match = _match(cx, body.get("match"), body.get("target"))
    else:
        match = Match()
    cx.step = bool(match.targets)
    conditions: tuple[Condition, ...] = ()
    if "conditions" in body:
        conditions = tuple(_condition(cx, c) for c in _list_nodes(cx, body["conditions"], "`conditions`"))
    cx.step = False
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


def _requirements(cx: _Ctx, node: Any) -> tuple[Requirement, ...]:
    """`require: [{topics: [...], fields: [meta.capability, labels.env]}]`."""
    out: list[Requirement] = []
    for item in _list_nodes(cx, node, "`require`"):
        body = _mapping(cx, item, "a `require` entry", _REQUIRE_KEYS)
        if "topics" not in body or "fields" not in body:
            cx.fail(item, "a `require` entry needs `topics` and `fields`")
        topics = _topics(cx, body["topics"], "`require.topics`")
        fields = _str_list(cx, body["fields"], "`require.fields`")
        for i, name in enumerate(fields):
            ok = name == "prompt" or (name.startswith("meta.") and name[5:] in _REQUIRE_META)
            ok = ok or (name.startswith("labels.") and bool(_LABEL_KEY.fullmatch(name[7:])))
            if not ok:
                cx.fail(
                    _item_node(body["fields"], i),
                    f"unknown required field `{name}` (expected prompt, labels.<key> or "
                    f"meta.<key> with key one of {', '.join(_REQUIRE_META)})",
                )
        line = item.start_mark.line + 1
        out.append(Requirement(topics=topics, fields=tuple(dict.fromkeys(fields)), line=line))
    return tuple(out)


def _classifiers(cx: _Ctx, node: Any) -> tuple[tuple[Any, ...], Classifier]:
    """The bundle's classifier patterns, compiled into the ingress classifier here (not only at
    install), so that a bad regex is an error of the bundle wherever it is loaded."""
    items = _list_nodes(cx, node, "`classifiers`")
    plain = [_plain(c) for c in items]
    for c, cnode in zip(plain, items, strict=True):
        if not isinstance(c, dict):
            cx.fail(cnode, "each classifier pattern must be a mapping")
        try:
            Pattern.from_mapping(c)
        except BadRequest as exc:
            cx.fail(cnode, f"bad classifier pattern: {exc.message}")
    try:
        classifier = DEFAULT_CLASSIFIER.extend(plain)
    except BadRequest as exc:  # a duplicate name (each pattern alone was fine)
        cx.fail(node, f"bad classifier pattern: {exc.message}")
    return tuple(plain), classifier


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
    if "version" in body:  # the seeds' snippets omit it: absent means 1
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
    require = _requirements(cx, body["require"]) if "require" in body else ()
    classifiers: tuple[Any, ...] = ()
    classifier = DEFAULT_CLASSIFIER
    if "classifiers" in body:
        classifiers, classifier = _classifiers(cx, body["classifiers"])
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
        require=require,
        classifiers=classifiers,
        classifier=classifier,
        canonical=canonical,
        snapshot=hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
    )


def _duration(seconds: int) -> str:
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _match_data(m: Match) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in _MATCH_KEYS:
        value = getattr(m, key)
        if value:
            out[key] = {k: list(v) for k, v in value.items()} if key == "labels" else list(value)
    return out


def _rule_data(rule: Rule) -> dict[str, Any]:
    out: dict[str, Any] = {"id": rule.id}
    if rule.description:
        out["description"] = rule.description
    out["decision"] = rule.decision
    out["reason"] = rule.reason
    match = _match_data(rule.match)
    if match:
        out["match"] = match
    if rule.conditions:
        out["conditions"] = [c.to_data() for c in rule.conditions]
    if rule.remediations:
        out["remediations"] = [
            {k: v for k, v in r.to_dict().items() if v or k == "id"} for r in rule.remediations
        ]
    if rule.approval_ttl is not None:
        out["approval_ttl"] = _duration(rule.approval_ttl)
    out["audit"] = rule.audit
    return out


def canonical_data(bundle: Bundle) -> dict[str, Any]:
    """The bundle in the canonical spelling (what `gatehouse policy check --canonical` prints).

    Loading it again gives the same rules, whichever spelling the bundle was written in; defaults
    are written out so that a reader sees what applies.
    """
    out: dict[str, Any] = {"version": bundle.version, "name": bundle.name}
    if bundle.description:
        out["description"] = bundle.description
    out["default_decision"] = bundle.default_decision
    out["fail_mode"] = bundle.fail_mode
    if bundle.fail_mode_overrides:
        out["fail_mode_overrides"] = [
            {"topics": list(o.topics), "fail_mode": o.fail_mode} for o in bundle.fail_mode_overrides
        ]
    if bundle.require:
        out["require"] = [{"topics": list(r.topics), "fields": list(r.fields)} for r in bundle.require]
    out["rules"] = [_rule_data(r) for r in bundle.rules]
    if bundle.output_rules:
        out["output_rules"] = [
            {
                "id": o.id,
                "detectors": list(o.detectors),
                "decision": o.decision,
                **({"reason": o.reason} if o.reason else {}),
                **({"topics": list(o.topics)} if o.topics else {}),
            }
            for o in bundle.output_rules
        ]
    if bundle.classifiers:
        out["classifiers"] = [dict(c) for c in bundle.classifiers]
    return out

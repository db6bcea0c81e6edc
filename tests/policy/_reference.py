"""A naive reference evaluator for the policy language (DESIGN.md section 3).

It deliberately shares nothing with `gatehouse.policy.compiler` or `gatehouse.policy.glob`: globs
are matched by plain recursion over characters, and every rule is checked in listed order
straight from the frozen `Rule` / `Match` / `Condition` model. The property tests compare the
compiled, indexed engine against it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

_ABSENT = object()
_SEVERITY = {"deny": 0, "require_approval": 1, "allow": 2}
_SEQUENCES = (list, tuple, set, frozenset)


def glob_match(pattern: str, topic: str, sep: str = ".") -> bool:
    """`*` = any run of characters without `sep`; `**` = any run of characters at all.

    Topics and capabilities separate segments with a dot, step targets with a colon.
    """
    if not pattern:
        return not topic
    if pattern.startswith("**"):
        rest = pattern[2:]
        return any(glob_match(rest, topic[k:], sep) for k in range(len(topic) + 1))
    if pattern[0] == "*":
        rest = pattern[1:]
        for k in range(len(topic) + 1):
            if glob_match(rest, topic[k:], sep):
                return True
            if k < len(topic) and topic[k] == sep:
                return False  # `*` may not swallow a separator
        return False
    return bool(topic) and topic[0] == pattern[0] and glob_match(pattern[1:], topic[1:], sep)


def capability_match(pattern: str, capability: Any) -> bool:
    """Exact, or a topic-style glob; a lone `*` / `**` is any capability (as for identities)."""
    if not isinstance(capability, str):
        return False
    if pattern in ("*", "**"):
        return True
    return glob_match(pattern, capability) if "*" in pattern else pattern == capability


def _same(a: Any, b: Any) -> bool:
    """Equality where a boolean equals only a boolean (`1` is not `true`)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return bool(a == b)


def _field(ctx: Mapping[str, Any], name: str) -> Any:
    if name.startswith("labels."):
        labels = ctx.get("labels") or {}
        return labels.get(name[len("labels.") :], _ABSENT)
    if name.startswith(("params.", "session.")):
        v: Any = ctx
        for part in name.split("."):
            if not isinstance(v, Mapping) or part not in v:
                return _ABSENT
            v = v[part]
        return v
    return ctx.get(name, _ABSENT)


def _values(v: Any) -> Sequence[Any]:
    """A list-valued context field is tested item by item."""
    return list(v) if isinstance(v, _SEQUENCES) else [v]


def condition_holds(cond: Any, ctx: Mapping[str, Any]) -> bool:
    if cond.op == "not":
        return not condition_holds(cond.children[0], ctx)
    if cond.op == "all":
        return all(condition_holds(c, ctx) for c in cond.children)
    if cond.op == "any":
        return any(condition_holds(c, ctx) for c in cond.children)
    v = _field(ctx, cond.field)
    if cond.op == "exists":
        return v is not _ABSENT and v is not None
    if cond.op == "eq":
        # An absent field equals nothing.
        return v is not _ABSENT and any(_same(item, cond.value) for item in _values(v))
    wanted = list(cond.value)
    is_in = v is not _ABSENT and any(_same(item, w) for item in _values(v) for w in wanted)
    if cond.op == "in":
        return is_in
    assert cond.op == "not_in", cond.op
    return not is_in


def _one_of(v: Any, allowed: Sequence[str]) -> bool:
    return any(isinstance(item, str) and item in allowed for item in _values(v))


def failures(rule: Any, ctx: Mapping[str, Any]) -> list[str]:
    """Every failing part of `rule` for `ctx`, in the order explain reports the first one."""
    m = rule.match
    out: list[str] = []
    target = ctx.get("target")
    if m.targets:
        # A step rule: only for a tool call whose target one of its patterns covers.
        if not (isinstance(target, str) and any(glob_match(p, target, ":") for p in m.targets)):
            out.append("targets")
    elif target is not None:
        out.append("targets")  # a job rule never judges a tool call
    if m.topics:
        topic = ctx.get("topic")
        if not (isinstance(topic, str) and any(glob_match(p, topic) for p in m.topics)):
            out.append("topics")
    labels = ctx.get("labels") or {}
    for key, allowed in m.labels.items():
        if labels.get(key) not in allowed:
            out.append(f"labels.{key}")
    if m.capabilities and not any(
        capability_match(p, v) for p in m.capabilities for v in _values(ctx.get("capability"))
    ):
        out.append("capabilities")
    if m.tenants and not _one_of(ctx.get("tenant"), m.tenants):
        out.append("tenants")
    if m.risk_tags and not any(t in m.risk_tags for t in ctx.get("risk_tags") or ()):
        out.append("risk_tags")
    if m.requester_roles and not _one_of(ctx.get("requester_role"), m.requester_roles):
        out.append("requester_roles")
    for i, cond in enumerate(rule.conditions):
        if not condition_holds(cond, ctx):
            out.append(f"conditions[{i}]")
    return out


def rule_matches(rule: Any, ctx: Mapping[str, Any]) -> bool:
    return not failures(rule, ctx)


def decide(rules: Sequence[Any], default_decision: str, ctx: Mapping[str, Any]) -> tuple[str, str]:
    """(decision, rule id): most restrictive matching rule, ties to the first listed."""
    best: Any = None
    for rule in rules:
        if not rule_matches(rule, ctx):
            continue
        if best is None or _SEVERITY[rule.decision] < _SEVERITY[best.decision]:
            best = rule
    if best is None:
        return default_decision, "default"
    return best.decision, best.id

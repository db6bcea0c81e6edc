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


# ---------------------------------------------------------------------------------------------
# Step rules (DESIGN.md section 9), written out naively: per element on a list, positive false
# on an absent (or null, or empty) value, strings folded with unicodedata directly, domains by
# splitting the host on dots, RE2 through `re2.search`, globs by `fnmatch`-like recursion.

import dataclasses as _dc  # noqa: E402
import math as _math  # noqa: E402
import unicodedata as _ud  # noqa: E402

import re2 as _re2  # noqa: E402


def _fold(s: str) -> str:
    return _ud.normalize("NFKC", s).casefold()


def _num(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v) if _math.isfinite(v) else None
    if isinstance(v, str):
        s = v.strip()
        body = s[1:] if s[:1] in "+-" else s
        mantissa, _, exp = body.lower().partition("e")
        digits = mantissa.replace(".", "", 1)
        if not digits.isdigit() or not digits.isascii() or (exp and not exp.lstrip("+-").isdigit()):
            return None
        f = float(s)
        return f if _math.isfinite(f) else None
    return None


def _host(v: str) -> str:
    v = _fold(v).strip()
    if "://" in v and v.split("://", 1)[0].replace("+", "").replace("-", "").replace(".", "").isalnum():
        rest = v.split("://", 1)[1]
        for stop in "/?#\\ \t\n":
            rest = rest.split(stop, 1)[0]
        rest = rest.rsplit("@", 1)[-1]
    else:
        rest = v.rsplit("@", 1)[-1]
        for stop in "/?#\\ \t\n":
            rest = rest.split(stop, 1)[0]
    out = ""
    for c in rest:
        if c.isalnum() or c in "._-":
            out += c
        else:
            break
    return out.strip("._-").rstrip(".")


def _glob(p: str, s: str) -> bool:
    if not p:
        return not s
    if p[0] == "*":
        return any(_glob(p[1:], s[k:]) for k in range(len(s) + 1))
    return bool(s) and (p[0] == "?" or p[0] == s[0]) and _glob(p[1:], s[1:])


def _same_step(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return _fold(a) == _fold(b)
    return _same(a, b)


def _element(op: str, value: Any, e: Any, sets: Mapping[str, Sequence[str]]) -> bool:
    if op in ("gt", "gte", "lt", "lte"):
        n = _num(e)
        if n is None:
            return False
        return {"gt": n > value, "gte": n >= value, "lt": n < value, "lte": n <= value}[op]
    if op == "eq":
        return _same_step(e, value)
    if op == "in":
        return any(_same_step(e, w) for w in value)
    if op == "matches":
        return isinstance(e, str) and _re2.search(value, e) is not None
    if op == "glob":
        return isinstance(e, str) and any(_glob(p, e) for p in value)
    if op == "in_set":
        members = [_fold(m) for name in value for m in sets[name]]
        if isinstance(e, str):
            return _fold(e) in members
        return isinstance(e, int) and not isinstance(e, bool) and str(e) in members
    if op == "domain_in":
        if not isinstance(e, str):
            return False
        domains = [m for item in value for m in sets.get(item, [item])]
        domains = [_fold(d).strip().removeprefix("*.").strip(".") for d in domains]
        host = _host(e)
        return any(d and (host == d or host.endswith("." + d)) for d in domains)
    raise AssertionError(op)


def step_condition_holds(cond: Any, ctx: Mapping[str, Any], sets: Mapping[str, Sequence[str]]) -> bool:
    op = cond.op
    if op == "not":
        return not step_condition_holds(cond.children[0], ctx, sets)
    if op in ("all", "any"):
        results = [step_condition_holds(c, ctx, sets) for c in cond.children]
        return all(results) if op == "all" else any(results)
    if op == "session_count":
        targets, cmp, n = cond.value
        history = (ctx.get("session") or {}).get("allowed_targets") or []
        k = sum(1 for t in history if any(glob_match(p, t, ":") for p in targets))
        return {"gt": k > n, "gte": k >= n, "lt": k < n, "lte": k <= n, "eq": k == n}[cmp]
    v = ctx.get("$", _ABSENT) if cond.field == "$" else _field(ctx, cond.field)
    if cond.field.startswith("$."):
        v = _field({"params": ctx.get("$")}, "params." + cond.field[2:])
    if op in ("each", "some"):
        items = [] if v is _ABSENT or v is None else list(v) if isinstance(v, _SEQUENCES) else [v]
        verdicts = []
        for e in items:
            scope = {**ctx, "$": e}
            inner = [step_condition_holds(c, scope, sets) for c in cond.children]
            verdicts.append(all(inner) if cond.value == "all" else any(inner))
        return all(verdicts) if op == "each" else any(verdicts)
    if op == "exists":
        return v is not _ABSENT and v is not None
    if op in ("len_gt", "len_lt"):
        if not isinstance(v, str | list | tuple | dict):
            return False
        return len(v) > cond.value if op == "len_gt" else len(v) < cond.value
    if op == "contains":
        if isinstance(v, str):
            return isinstance(cond.value, str) and _fold(cond.value) in _fold(v)
        if isinstance(v, _SEQUENCES):
            return any(_same_step(e, cond.value) for e in v)
        return False
    negated = op.startswith("not_")
    base = op[4:] if negated else op
    if v is _ABSENT or v is None or (isinstance(v, _SEQUENCES) and not v):
        positive = False
    elif isinstance(v, _SEQUENCES):
        positive = all(_element(base, cond.value, e, sets) for e in v)
    else:
        positive = _element(base, cond.value, v, sets)
    return not positive if negated else positive


def step_failures(rule: Any, ctx: Mapping[str, Any], sets: Mapping[str, Sequence[str]]) -> list[str]:
    """`failures` for a rule, with the step semantics of its conditions when it is a step rule."""
    out = failures(_dc.replace(rule, conditions=()), ctx)
    for i, cond in enumerate(rule.conditions):
        holds = step_condition_holds(cond, ctx, sets) if rule.match.targets else condition_holds(cond, ctx)
        if not holds:
            out.append(f"conditions[{i}]")
    return out


def step_decide(
    rules: Sequence[Any], default_decision: str, ctx: Mapping[str, Any], sets: Mapping[str, Sequence[str]]
) -> tuple[str, str]:
    best: Any = None
    for rule in rules:
        if step_failures(rule, ctx, sets):
            continue
        if best is None or _SEVERITY[rule.decision] < _SEVERITY[best.decision]:
            best = rule
    if best is None:
        return default_decision, "default"
    return best.decision, best.id

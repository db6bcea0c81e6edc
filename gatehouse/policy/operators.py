"""The condition operators of step rules (DESIGN.md section 9), compiled to predicates.

Semantics, the same for every operator unless it says otherwise:

- On an absent field (or JSON null) every positive operator is false and every `not_` form true;
  `exists` tells them apart.
- On a list value a positive operator holds only if it holds for every element, its `not_` form
  if it fails for any element (`not_x` is exactly `not x`). An empty list is treated as absent:
  it holds nothing positive. `contains` (membership), `len_*` (the list's size), `each` / `some`
  (per element, explicitly), `detects` and `from_*` (any string in the value) read the value
  whole instead.
- String comparisons (`eq`, `in`, sets, domains, `contains`, `from_*`) fold case after NFKC
  (`text.fold`); `matches` follows its pattern's own flags (`(?i)`), `glob` is exact.
- Numbers: an integer or float (never a boolean), or a string that spells a decimal number
  (`"1500.00"`: agents send amounts as text, and a deny rule must not be dodged by quoting).

Job rules keep the job semantics of `eq`, `in` and `not_in` (`compiler.compile_condition`: a
list matches when any item does, strings exact); the operators here that a job rule may use
compile alike in both stages.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from gatehouse.policy._regex import compile_re2
from gatehouse.policy.glob import compile_target
from gatehouse.policy.model import Condition
from gatehouse.policy.text import fold, host_of

__all__ = [
    "ABSENT",
    "ELEMENT",
    "compile_step_condition",
    "domain_list",
    "glob_regex",
    "number",
    "set_members",
]

Check = Callable[[Mapping[str, Any]], bool]
Getter = Callable[[Mapping[str, Any]], Any]
# What a getter answers for a field the context does not carry.
ABSENT: Any = object()
# The context key under which `each` / `some` bind the element (`$` in a rule).
ELEMENT = "$"
_SEQ = (list, tuple, set, frozenset)
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_CMP: Mapping[str, Callable[[float, float], bool]] = {
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
    "eq": lambda a, b: a == b,
}


def number(v: Any) -> float | None:
    """The number a value is (see the module docstring), or None."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, str) and len(v) <= 64:
        s = v.strip()
        if _NUMBER.fullmatch(s):
            f = float(s)
            return f if math.isfinite(f) else None
    return None


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A `glob` pattern: `*` any run of characters, `?` one character, the rest literal."""
    out = [".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern]
    return re.compile("".join(out), re.DOTALL)


def set_members(names: tuple[str, ...], sets: Mapping[str, tuple[str, ...]]) -> frozenset[str]:
    """The folded union of the named sets."""
    return frozenset(fold(m) for name in names for m in sets[name])


def _domain(d: str) -> str:
    return fold(d).strip().removeprefix("*.").strip(".")


def domain_list(items: tuple[str, ...], sets: Mapping[str, tuple[str, ...]]) -> frozenset[str]:
    """The folded domains of a `domain_in` list: each item a set name (its members) or a domain."""
    out: set[str] = set()
    for item in items:
        members = sets.get(item, (item,))
        out.update(d for d in (_domain(m) for m in members) if d)
    return frozenset(out)


def _in_domains(host: str, domains: frozenset[str]) -> bool:
    """`host` is one of `domains` or a name under one (checked suffix by suffix)."""
    while host:
        if host in domains:
            return True
        host = host.partition(".")[2]
    return False


def _scalar_text(e: Any) -> str | None:
    """A string element as folded text; an integer as its text (sets list account numbers)."""
    if isinstance(e, str):
        return fold(e)
    if isinstance(e, int) and not isinstance(e, bool):
        return str(e)
    return None


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, str) and isinstance(b, str):
        return fold(a) == fold(b)
    return bool(a == b)


def _every(get: Getter, pred: Callable[[Any], bool]) -> Check:
    """The positive form over a field: false when absent, per element on a list."""

    def check(ctx: Mapping[str, Any]) -> bool:
        v = get(ctx)
        if v is None or v is ABSENT:
            return False
        if isinstance(v, _SEQ):
            if not v:
                return False
            for e in v:  # noqa: SIM110 - the hot path
                if not pred(e):
                    return False
            return True
        return pred(v)

    return check


def _negate(check: Check) -> Check:
    return lambda ctx: not check(ctx)


def _element_pred(cond: Condition, sets: Mapping[str, tuple[str, ...]]) -> Callable[[Any], bool]:
    op, want = cond.op, cond.value
    base = op.removeprefix("not_")
    if base in ("gt", "gte", "lt", "lte"):
        cmp, bound = _CMP[base], float(want)

        def num(e: Any) -> bool:
            n = number(e)
            return n is not None and cmp(n, bound)

        return num
    if base == "eq":
        return lambda e: _same(e, want)
    if base == "in":
        bools = frozenset(x for x in want if isinstance(x, bool))
        texts = frozenset(fold(x) for x in want if isinstance(x, str))
        others = frozenset(x for x in want if not isinstance(x, bool | str))

        def one_in(e: Any) -> bool:
            if isinstance(e, bool):
                return e in bools
            if isinstance(e, str):
                return fold(e) in texts
            try:
                return e in others
            except TypeError:
                return False

        return one_in
    if base == "matches":
        rx = compile_re2(want)
        return lambda e: isinstance(e, str) and rx.search(e) is not None
    if base == "glob":
        globs = tuple(glob_regex(p) for p in want)
        return lambda e: isinstance(e, str) and any(g.fullmatch(e) for g in globs)
    if base == "in_set":
        members = set_members(want, sets)

        def in_set(e: Any) -> bool:
            t = _scalar_text(e)
            return t is not None and t in members

        return in_set
    if base == "domain_in":
        domains = domain_list(want, sets)
        return lambda e: isinstance(e, str) and _in_domains(host_of(e), domains)
    raise ValueError(f"not an element operator: {op}")  # pragma: no cover - the loader refuses it


def compile_step_condition(
    cond: Condition,
    *,
    getter: Callable[[str], Getter],
    sets: Mapping[str, tuple[str, ...]],
    job: Callable[[Condition], Check] | None = None,
) -> Check:
    """A condition tree -> a predicate with the semantics of section 9.

    `job`, when given, compiles `eq` / `in` / `not_in` for a job rule (their job semantics);
    every other operator compiles the same in both stages.
    """

    def sub(c: Condition) -> Check:
        return compile_step_condition(c, getter=getter, sets=sets, job=job)

    op = cond.op
    if op == "not":
        inner = sub(cond.children[0])
        return lambda ctx: not inner(ctx)
    if op in ("all", "any"):
        parts = tuple(sub(c) for c in cond.children)
        if op == "all":
            return lambda ctx: all(p(ctx) for p in parts)
        return lambda ctx: any(p(ctx) for p in parts)
    if op in ("each", "some"):
        return _quantified(cond, getter(cond.field), tuple(sub(c) for c in cond.children))
    if op == "session_count":
        return _session_count(cond)
    if job is not None and op in ("eq", "in", "not_in"):
        return job(cond)
    get = getter(cond.field)
    if op == "exists":
        return lambda ctx: get(ctx) not in (ABSENT, None)
    if op in ("len_gt", "len_lt"):
        size, longer = int(cond.value), op == "len_gt"

        def length(ctx: Mapping[str, Any]) -> bool:
            v = get(ctx)
            if not isinstance(v, str | list | tuple | dict) and not isinstance(v, Mapping):
                return False
            return len(v) > size if longer else len(v) < size

        return length
    if op == "contains":
        return _contains(get, cond.value)
    if op == "detects":
        return _detects(cond.field, frozenset(cond.value))
    if op in ("from_untrusted", "from_prompt"):
        untrusted = op == "from_untrusted"

        def provenance(ctx: Mapping[str, Any]) -> bool:
            v = get(ctx)
            if v is ABSENT or v is None:
                return False
            prov = ctx.get("provenance")
            if prov is None:
                return False
            return bool(prov.from_untrusted(v) if untrusted else prov.from_prompt(v))

        return provenance
    check = _every(get, _element_pred(cond, sets))
    return _negate(check) if op.startswith("not_") else check


def _contains(get: Getter, want: Any) -> Check:
    needle = fold(want) if isinstance(want, str) else None

    def contains(ctx: Mapping[str, Any]) -> bool:
        v = get(ctx)
        if isinstance(v, str):
            return needle is not None and needle in fold(v)
        if isinstance(v, _SEQ):
            return any(_same(e, want) for e in v)
        return False

    return contains


def _detects(field: str, wanted: frozenset[str]) -> Check:
    """One of the detectors fires on a string under `field`: `ctx["detections"]` maps the path of
    each string of the params (list items under their list's path) to the detectors that fired."""
    prefix = field + "."

    def detects(ctx: Mapping[str, Any]) -> bool:
        found = ctx.get("detections")
        if not found:
            return False
        for path, names in found.items():
            if (path == field or path.startswith(prefix)) and not wanted.isdisjoint(names):
                return True
        return False

    return detects


def _quantified(cond: Condition, get: Getter, parts: tuple[Check, ...]) -> Check:
    """`each` (vacuous on an empty list or absent field) and `some` (its existential form)."""
    every = cond.op == "each"
    inner_all = cond.value == "all"

    def holds(ctx: Mapping[str, Any]) -> bool:
        v = get(ctx)
        if v is ABSENT or v is None:
            items: Any = ()
        elif isinstance(v, _SEQ):
            items = v
        else:
            items = (v,)
        if not items:
            return every
        scope = dict(ctx)
        for e in items:
            scope[ELEMENT] = e
            ok = all(p(scope) for p in parts) if inner_all else any(p(scope) for p in parts)
            if ok != every:
                return not every
        return every

    return holds


def _session_count(cond: Condition) -> Check:
    """Earlier allowed steps of the session whose target matches: `session.allowed_targets`."""
    targets, op, n = cond.value
    globs = tuple(compile_target(p).regex for p in targets)
    cmp = _CMP[op]

    def count(ctx: Mapping[str, Any]) -> bool:
        session = ctx.get("session")
        history = session.get("allowed_targets") if isinstance(session, Mapping) else None
        k = 0
        if history:
            for t in history:
                if isinstance(t, str) and any(g.fullmatch(t) for g in globs):
                    k += 1
        return cmp(float(k), float(n))

    return count

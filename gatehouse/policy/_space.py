"""What a rule matches, as sets lint can compare: `Space`, `disjoint`, `covers`.

Theory of operation. A rule matches a context when every part of its match and every one of its
conditions holds. `Space.of(rule)` gathers those parts into comparable pieces: the topic or
target globs, the strings each scalar field must be one of (from the match and from `eq` / `in`
conditions), the any-of sets of list fields (`risk_tags`, roles), the numeric interval of each
field (`gt`, `lte`, ...), the fields that must be present or absent, and every other condition as
an opaque key, positive or negated. Two questions are then answered from these pieces alone:

- `disjoint(a, b)`: no context matches both (true only when provable, e.g. two topic globs that
  share no topic, `env: prod` against `env: staging`, `gt: 10` against `lte: 5`, a condition
  against its negation, `exists: capability` against `not: {exists: capability}`);
- `covers(a, b)`: every context `b` matches, `a` matches too (true only when provable: each
  constraint of `a` is implied by one of `b`, globs by glob containment, sets by subset).

Both answer `False` when unsure, so lint claims shadowing or disjointness only when it is certain.
Scalar fields are those the service always fills with one string (`topic`, `tenant`,
`capability`, `labels.<key>`, the step's own fields); `risk_tags` and `requester_role` may be
lists, where two different values can both match, so they are only compared by subset.
A step rule's string comparisons fold case (section 9); a job rule's are exact; two constraints
are compared as the weaker of their semantics allows (see `_implied`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from gatehouse.policy._globs import contains, intersects
from gatehouse.policy.glob import capability_glob
from gatehouse.policy.model import Condition, Rule
from gatehouse.policy.text import fold

__all__ = ["Interval", "Space", "covers", "disjoint", "key_of"]

# Fields that may hold a list in a job context: any item may match, so two values do not exclude
# each other there.
_LIST_FIELDS = frozenset({"risk_tags", "requester_role", "detected"})
_NEGATED = {"not_in": "in", "not_in_set": "in_set", "not_domain_in": "domain_in"}
_BOUNDS = ("gt", "gte", "lt", "lte")


def key_of(cond: Condition) -> str:
    """A condition as a comparable string (its canonical data)."""
    return json.dumps(cond.to_data(), sort_keys=True, default=str)


@dataclass(frozen=True, slots=True)
class Interval:
    lo: float = -math.inf
    lo_open: bool = True
    hi: float = math.inf
    hi_open: bool = True

    def empty(self) -> bool:
        return self.lo > self.hi or (self.lo == self.hi and (self.lo_open or self.hi_open))

    def meet(self, other: Interval) -> Interval:
        lo, lo_open = max((self.lo, not self.lo_open), (other.lo, not other.lo_open))
        hi, hi_open = min((self.hi, self.hi_open), (other.hi, other.hi_open))
        return Interval(lo, not lo_open, hi, hi_open)

    def within(self, other: Interval) -> bool:
        """Every number of `self` is in `other`."""
        if self.empty():
            return True
        lo_ok = self.lo > other.lo or (self.lo == other.lo and (self.lo_open or not other.lo_open))
        hi_ok = self.hi < other.hi or (self.hi == other.hi and (self.hi_open or not other.hi_open))
        return lo_ok and hi_ok

    def show(self) -> str:
        lo = "" if self.lo == -math.inf else f"{'>' if self.lo_open else '>='} {self.lo:g}"
        hi = "" if self.hi == math.inf else f"{'<' if self.hi_open else '<='} {self.hi:g}"
        return " and ".join(x for x in (lo, hi) if x)


def _bound(op: str, value: float) -> Interval:
    if op == "gt":
        return Interval(lo=value, lo_open=True)
    if op == "gte":
        return Interval(lo=value, lo_open=False)
    if op == "lt":
        return Interval(hi=value, hi_open=True)
    return Interval(hi=value, hi_open=False)


@dataclass
class Space:
    """The pieces of one rule's match (see the module docstring)."""

    rule: Rule
    step: bool
    sep: str
    # None: any topic (target); else the patterns, any of which must match.
    globs: tuple[str, ...] | None
    # (field, folds) -> the strings the field must be one of; `folds` for a step rule's conditions.
    exact: dict[tuple[str, bool], frozenset[str]] = field(default_factory=dict)
    # field -> the same, folded: what two constraints are compared by for disjointness.
    folded: dict[str, frozenset[str]] = field(default_factory=dict)
    # List fields: at least one item is one of these.
    anyof: dict[str, frozenset[str]] = field(default_factory=dict)
    cap_globs: tuple[str, ...] = ()
    ranges: dict[str, Interval] = field(default_factory=dict)
    present: set[str] = field(default_factory=set)
    absent: set[str] = field(default_factory=set)
    pos: set[str] = field(default_factory=set)
    neg: set[str] = field(default_factory=set)
    # Conditions that are not simple constraints: implied only by the same condition.
    conds: list[Condition] = field(default_factory=list)
    quantified: list[Condition] = field(default_factory=list)
    # Why the rule matches nothing, when it provably does not (set by `of`).
    contradiction: str | None = None

    @classmethod
    def of(
        cls, rule: Rule, sets: Mapping[str, tuple[str, ...]], effects: frozenset[str | None] | None = None
    ) -> Space:
        """`effects`: the catalog's effects of every action the rule's targets can name, when
        the catalog lists them all (`None` for an action without one): a fact of the match."""
        m = rule.match
        step = rule.is_step
        patterns = m.targets if step else m.topics
        sp = cls(rule=rule, step=step, sep=":" if step else ".", globs=tuple(patterns) or None)
        for key, values in m.labels.items():
            sp._exact(f"labels.{key}", False, values)
        if m.tenants:
            sp._exact("tenant", False, m.tenants)
        if m.capabilities:
            if any(capability_glob(c) is not None for c in m.capabilities):
                sp.cap_globs = tuple("**" if c in ("*", "**") else c for c in m.capabilities)
                sp.present.add("capability")
            else:
                sp._exact("capability", False, m.capabilities)
        if m.risk_tags:
            sp._anyof("risk_tags", m.risk_tags)
        if m.requester_roles:
            sp._anyof("requester_role", m.requester_roles)
        if effects is not None:
            if effects == {None}:
                sp.absent.add("effect")
            elif None not in effects:
                sp._exact("effect", True, [e for e in effects if e is not None])
        for cond in _conjuncts(rule.conditions):
            sp._condition(cond, sets)
        sp._check()
        return sp

    # -- building ------------------------------------------------------------------------------

    def _exact(self, name: str, folds: bool, values: Any) -> None:
        vals = frozenset(fold(v) if folds else v for v in values)
        k = (name, folds)
        self.exact[k] = self.exact[k] & vals if k in self.exact else vals
        f = frozenset(fold(v) for v in values)
        self.folded[name] = self.folded[name] & f if name in self.folded else f
        self.present.add(name)

    def _anyof(self, name: str, values: Any) -> None:
        vals = frozenset(values)
        self.anyof[name] = self.anyof[name] & vals if name in self.anyof else vals
        self.present.add(name)

    def _condition(self, cond: Condition, sets: Mapping[str, tuple[str, ...]]) -> None:
        base, positive = _base(cond)
        if not positive:
            if base.op == "exists":
                self.absent.add(base.field)
            self.neg.add(key_of(base))
            return
        cond = base
        op = cond.op
        self.pos.add(key_of(cond))
        strings = _strings(cond)
        if strings is not None:
            if self.step or cond.field not in _LIST_FIELDS:
                self._exact(cond.field, self.step, strings)
            else:
                self._anyof(cond.field, strings)
            return
        if op in _BOUNDS and not isinstance(cond.value, bool):
            iv = _bound(op, float(cond.value))
            self.ranges[cond.field] = self.ranges[cond.field].meet(iv) if cond.field in self.ranges else iv
            self.present.add(cond.field)
            return
        if op == "exists":
            self.present.add(cond.field)
            return
        if op == "in_set" and not any(sets.get(n) for n in cond.value):
            self.contradiction = f"`in_set` on {_names(cond.value)}, which hold no member"
        if op in ("each", "some"):
            self.quantified.append(cond)
        self.conds.append(cond)

    def _check(self) -> None:
        for name, values in self.folded.items():
            if not values:
                self.contradiction = f"`{name}` must be one of values that exclude each other"
        for name, iv in self.ranges.items():
            if iv.empty():
                self.contradiction = f"no number is {_range_text(self.rule, name)}"
        clash = self.pos & self.neg
        if clash:
            self.contradiction = f"a condition and its negation: `{sorted(clash)[0]}`"
        both = self.present & self.absent
        if both:
            self.contradiction = f"`{sorted(both)[0]}` must be both present and absent"
        effect = self.folded.get("effect")
        if self.step and effect is not None and effect and effect.isdisjoint(_EFFECTS):
            self.contradiction = f"`effect` is one of read, write, destructive, never {_names(effect)}"


_EFFECTS = frozenset({"read", "write", "destructive"})


def _names(values: Any) -> str:
    return ", ".join(f"`{v}`" for v in sorted(values))


def _range_text(rule: Rule, name: str) -> str:
    parts = [
        f"{c.op} {c.value:g}"
        for c in _conjuncts(rule.conditions)
        if c.op in _BOUNDS and c.field == name and not isinstance(c.value, bool)
    ]
    return f"`{name}` {' and '.join(parts)}"


def _base(cond: Condition) -> tuple[Condition, bool]:
    """The positive condition under `cond`'s negations, and whether `cond` asserts it (True) or
    its negation (False): `not: {not: x}` is `x`, `not_in_set` is the negation of `in_set`."""
    positive = True
    while cond.op == "not":
        cond, positive = cond.children[0], not positive
    if cond.op in _NEGATED:
        cond, positive = Condition(_NEGATED[cond.op], cond.field, cond.value, cond.children), not positive
    return cond, positive


def _strings(cond: Condition) -> tuple[str, ...] | None:
    """The strings an `eq` / `in` condition allows, when it compares strings only."""
    if cond.op == "eq" and type(cond.value) is str:
        return (cond.value,)
    if cond.op == "in" and all(type(v) is str for v in cond.value):
        return tuple(cond.value)
    return None


def _conjuncts(conds: tuple[Condition, ...]) -> Iterator[Condition]:
    for cond in conds:
        if cond.op == "all":
            yield from _conjuncts(cond.children)
        else:
            yield cond


# -- relations ---------------------------------------------------------------------------------


def _globs_meet(a: Space, b: Space) -> bool:
    if a.globs is None or b.globs is None:
        return True
    sep = a.sep
    for p in a.globs:
        for q in b.globs:
            if intersects(p, q, sep):
                return True
    return False


def _negates(x: Condition, y: Condition) -> bool:
    """`x` holds exactly when `y` does not."""
    bx, px = _base(x)
    by, py = _base(y)
    return px != py and key_of(bx) == key_of(by)


def _quantifiers_exclude(e: Condition, s: Condition) -> bool:
    """`each {f, any: [c..]}` against `some {f, all: [d..]}`: the element `some` asks for fails
    every alternative `each` allows (each `c` is negated by some `d`)."""
    if e.op != "each" or s.op != "some" or e.field != s.field:
        return False
    if e.value == "any" and s.value == "all":
        return all(any(_negates(c, d) for d in s.children) for c in e.children)
    if e.value == "all" and s.value == "any":
        return all(any(_negates(c, d) for c in e.children) for d in s.children)
    return False


def disjoint(a: Space, b: Space) -> bool:
    """True when provably no context matches both rules."""
    if a.step != b.step:
        return True
    fa, fb = a.folded, b.folded
    if fa and fb:
        small, large = (fa, fb) if len(fa) <= len(fb) else (fb, fa)
        for name, values in small.items():
            other = large.get(name)
            if other is not None and values.isdisjoint(other):
                return True
    if a.ranges and b.ranges:
        for name, iv in a.ranges.items():
            other_iv = b.ranges.get(name)
            if other_iv is not None and iv.meet(other_iv).empty():
                return True
    if (a.absent and not a.absent.isdisjoint(b.present)) or (b.absent and not b.absent.isdisjoint(a.present)):
        return True
    if (b.neg and not a.pos.isdisjoint(b.neg)) or (a.neg and not b.pos.isdisjoint(a.neg)):
        return True
    if a.quantified and b.quantified:
        for e in a.quantified:
            for s in b.quantified:
                if _quantifiers_exclude(e, s) or _quantifiers_exclude(s, e):
                    return True
    return not _globs_meet(a, b)


def _cap_covered(a: Space, b: Space) -> bool:
    """`a`'s capability globs allow every capability `b` allows."""
    caps = b.exact.get(("capability", False))
    if caps is not None:
        return all(any(contains(p, c, ".") for p in a.cap_globs) for c in caps)
    if b.cap_globs:
        return all(any(contains(p, q, ".") for p in a.cap_globs) for q in b.cap_globs)
    return False


def _implied_strings(name: str, folds: bool, values: frozenset[str], b: Space) -> bool:
    """`b` guarantees that `name` is one of `values` (compared with or without folding)."""
    same = b.exact.get((name, folds))
    if same is not None and same <= values:
        return True
    if folds:
        other = b.exact.get((name, False))
        if other is not None and frozenset(fold(v) for v in other) <= values:
            return True
    return False


def _implied(cond: Condition, a: Space, b: Space) -> bool:
    """`b` guarantees the condition `cond` of `a`."""
    cond, positive = _base(cond)
    if not positive:
        return _excluded(cond, a, b)
    if key_of(cond) in b.pos:
        return True
    strings = _strings(cond)
    if strings is not None:
        if not a.step and cond.field in _LIST_FIELDS:
            have = b.anyof.get(cond.field)
            return have is not None and have <= frozenset(strings)
        vals = frozenset(fold(v) if a.step else v for v in strings)
        return _implied_strings(cond.field, a.step, vals, b)
    if cond.op in _BOUNDS and not isinstance(cond.value, bool):
        iv = b.ranges.get(cond.field)
        return iv is not None and iv.within(_bound(cond.op, float(cond.value)))
    if cond.op == "exists":
        return cond.field in b.present
    return False


def _excluded(cond: Condition, a: Space, b: Space) -> bool:
    """`b` guarantees that the positive condition `cond` fails."""
    if key_of(cond) in b.neg:
        return True
    if cond.op == "exists":
        return cond.field in b.absent
    strings = _strings(cond)
    if strings is not None and (b.step or cond.field not in _LIST_FIELDS):
        have = b.folded.get(cond.field)
        return have is not None and have.isdisjoint(fold(v) for v in strings)
    return False


def covers(a: Space, b: Space) -> bool:
    """True when provably every context that matches `b` matches `a`."""
    if a.step != b.step:
        return False
    if a.globs is not None:
        if b.globs is None:
            return False
        if not all(any(contains(p, q, a.sep) for p in a.globs) for q in b.globs):
            return False
    m = a.rule.match
    for key, values in m.labels.items():
        if not _implied_strings(f"labels.{key}", False, frozenset(values), b):
            return False
    if m.tenants and not _implied_strings("tenant", False, frozenset(m.tenants), b):
        return False
    if m.capabilities:
        if a.cap_globs:
            if not _cap_covered(a, b):
                return False
        elif not _implied_strings("capability", False, frozenset(m.capabilities), b):
            return False
    for name, values in (("risk_tags", m.risk_tags), ("requester_role", m.requester_roles)):
        if values:
            have = b.anyof.get(name)
            if have is None or not have <= frozenset(values):
                return False
    return all(_implied(cond, a, b) for cond in _conjuncts(a.rule.conditions))

"""Compile rules into an index: the request path looks up candidates, then checks only those.

Theory of operation. Each rule is filed under exactly one *index key*, the most selective fields
it constrains: its topic patterns if it has any (exact topics in a hash map, wildcard patterns in
a segment trie under their literal prefix); else its *equality constraints* together (rules
grouped by which fields they constrain, one hash lookup per group); else the short list of rules
that apply everywhere. A lookup gathers the candidates for a context from each map, and
evaluates them in *rank* order: rank sorts by severity first (deny, require_approval, allow) and
rule position second, so the first candidate that fully matches is exactly the winner that
"most restrictive wins, ties to the first listed" asks for, and evaluation stops there.

The equality constraints are derived from the rules, not from a fixed list of job fields (as
OPA's rule index is built from whatever refs the rules compare): every `field is one of these
strings` a rule cannot match without, from its match (`capabilities`, `tenants`, `labels.<key>`,
`risk_tags`, `requester_roles`) and from its conditions (an `eq` or `in` of strings, at the top
level or under `all`, on any field of the stage's schema: `params.a.b`, `adapter`,
`labels.env`, ...). The key of a rule is its match's constraints when it has any, else its
conditions'; fields whose value is a list (`ContextSchema.sets`: `risk_tags`, roles) only when
nothing else is constrained, and then the first alone, since a list fans the lookup out. A rule
whose topic or target patterns are all bare wildcards (`**`, `adapter:*:*`) would sit where
every context finds it; it is grouped by its constraints instead when it has some.

The topic part of the lookup depends only on the topic, so it is memoised per policy.

Step rules (rules that name `targets`) and job rules live in two separate indexes: a job context
(no `target`) is looked up only among job rules, and a step context (one with a `target`) only
among step rules, whose index files them under their target patterns (a trie over `:`-segments,
the same structure as for topics). `scan` and `explain`, which walk every rule, see the same
split as a first check named `targets`: a step rule fails it unless the context's target
matches, a job rule fails it whenever the context has a target.

Capability patterns may be globs (`db.*`, `*`): exact capabilities are keys of the equality
groups, and a rule whose capabilities include a glob (and constrains no other grouped field)
sits in a short fallback list filtered by its capability check.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache, lru_cache
from typing import Any

from gatehouse.policy.glob import TopicGlob, capability_glob, compile_glob, compile_target
from gatehouse.policy.model import JOB_CONTEXT, STEP_CONTEXT, Condition, Decision, Rule, severity
from gatehouse.policy.operators import ABSENT, ELEMENT, compile_step_condition
from gatehouse.policy.text import fold

__all__ = ["ABSENT", "Check", "CompiledRule", "Index", "compile_rules", "field_getter"]

Check = Callable[[Mapping[str, Any]], bool]
Getter = Callable[[Mapping[str, Any]], Any]
_ABSENT = ABSENT
_SEQ = (list, tuple, set, frozenset)
# Roots addressed by one key (`labels.<key>`) and by a path through nested mappings
# (`params.a.b`), in any stage (the loader has already refused what a stage does not declare).
_KEYED = frozenset(JOB_CONTEXT.keyed) | frozenset(STEP_CONTEXT.keyed)
# `session.<field>` reads the session mapping; `$.a` the element `each` / `some` bound.
_NESTED = frozenset(JOB_CONTEXT.nested) | frozenset(STEP_CONTEXT.nested) | {"session", ELEMENT}


@cache
def field_getter(field_name: str) -> Getter:
    """A function that reads `field_name` from a context, `ABSENT` when it is not there.

    `labels.<key>` is one key of the `labels` mapping; `params.a.b` (and `session.<path>`)
    walks nested mappings, and anything but a mapping on the way makes the field absent.
    """
    root, dot, rest = field_name.partition(".")
    if dot and root in _KEYED:

        def get_key(ctx: Mapping[str, Any]) -> Any:
            value = ctx.get(root)
            if type(value) is dict or isinstance(value, Mapping):
                return value.get(rest, _ABSENT)
            return _ABSENT

        return get_key
    if dot and root in _NESTED:
        path = tuple(field_name.split("."))

        def get_path(ctx: Mapping[str, Any]) -> Any:
            v: Any = ctx
            for part in path:
                if type(v) is not dict and not isinstance(v, Mapping):
                    return _ABSENT
                v = v.get(part, _ABSENT)
                if v is _ABSENT:
                    return _ABSENT
            return v

        return get_path

    def get(ctx: Mapping[str, Any]) -> Any:
        return ctx.get(field_name, _ABSENT)

    return get


def _same(a: Any, b: Any) -> bool:
    """Equality in which a boolean equals only a boolean: `approved: 1` must not equal `true`."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return bool(a == b)


def compile_condition(cond: Condition) -> Check:
    """A condition tree -> a predicate over the context. Absent fields never equal anything."""
    if cond.op == "not":
        inner = compile_condition(cond.children[0])
        return lambda ctx: not inner(ctx)
    if cond.op in ("all", "any"):
        parts = tuple(compile_condition(c) for c in cond.children)
        if cond.op == "all":
            return lambda ctx: all(p(ctx) for p in parts)
        return lambda ctx: any(p(ctx) for p in parts)
    get = field_getter(cond.field)
    if cond.op == "exists":
        # Present and not null: how a rule tells an omitted field from any value it may take.
        return lambda ctx: get(ctx) not in (_ABSENT, None)
    if cond.op == "eq":
        want = cond.value

        def eq(ctx: Mapping[str, Any]) -> bool:
            v = get(ctx)
            if v is _ABSENT:
                return False
            if isinstance(v, _SEQ):
                return any(_same(item, want) for item in v)
            return _same(v, want)

        return eq
    # bool is an int in Python (`1 in {True}`), so booleans are kept in a set of their own.
    bools = frozenset(x for x in cond.value if isinstance(x, bool))
    others = frozenset(x for x in cond.value if not isinstance(x, bool))

    def one_in(v: Any) -> bool:
        if isinstance(v, bool):
            return v in bools
        try:
            return v in others
        except TypeError:  # an unhashable value (a nested list or mapping in params) is no string
            return False

    def in_(ctx: Mapping[str, Any]) -> bool:
        v = get(ctx)
        if v is _ABSENT:
            return False
        if isinstance(v, _SEQ):
            return any(one_in(item) for item in v)
        return one_in(v)

    if cond.op == "in":
        return in_
    return lambda ctx: not in_(ctx)


@cache
def _topic_check(patterns: tuple[str, ...]) -> Check:
    globs = tuple(compile_glob(p) for p in patterns)

    def check(ctx: Mapping[str, Any]) -> bool:
        topic = ctx.get("topic")
        return isinstance(topic, str) and any(g.regex.fullmatch(topic) for g in globs)

    return check


@cache
def _target_check(patterns: tuple[str, ...]) -> Check:
    globs = tuple(compile_target(p) for p in patterns)

    def check(ctx: Mapping[str, Any]) -> bool:
        target = ctx.get("target")
        return isinstance(target, str) and any(g.regex.fullmatch(target) for g in globs)

    return check


def _no_target(ctx: Mapping[str, Any]) -> bool:
    """A job rule's side of the split: the context is a job, not a tool call."""
    return ctx.get("target") is None


@cache
def _capability_check(patterns: tuple[str, ...]) -> Check:
    exact = frozenset(p for p in patterns if capability_glob(p) is None)
    globs = tuple(rx for p in patterns if (rx := capability_glob(p)) is not None)
    if not globs:
        return _one_of("capability", exact)

    def one(v: Any) -> bool:
        return isinstance(v, str) and (v in exact or any(rx.fullmatch(v) for rx in globs))

    def check(ctx: Mapping[str, Any]) -> bool:
        v = ctx.get("capability")
        if isinstance(v, _SEQ):
            return any(one(item) for item in v)
        return one(v)

    return check


@cache
def _one_of(key: str, allowed: frozenset[str]) -> Check:
    wanted = allowed

    def check(ctx: Mapping[str, Any]) -> bool:
        v = ctx.get(key)
        if isinstance(v, _SEQ):
            return not wanted.isdisjoint(v)
        return v in wanted

    return check


@cache
def _label_check(key: str, allowed: frozenset[str]) -> Check:
    wanted = allowed

    def check(ctx: Mapping[str, Any]) -> bool:
        labels = ctx.get("labels")
        if not labels:
            return False
        return labels.get(key) in wanted

    return check


@cache
def _any_tag(allowed: frozenset[str]) -> Check:
    wanted = allowed

    def check(ctx: Mapping[str, Any]) -> bool:
        tags = ctx.get("risk_tags")
        if not tags:
            return False
        return not wanted.isdisjoint(tags)

    return check


def _all_of(checks: Sequence[Check]) -> Check:
    if not checks:
        return lambda ctx: True
    if len(checks) == 1:
        return checks[0]
    frozen = tuple(checks)

    def check(ctx: Mapping[str, Any]) -> bool:
        # A plain loop, not all(<genexpr>): this is the hot path and the generator costs.
        for c in frozen:  # noqa: SIM110
            if not c(ctx):
                return False
        return True

    return check


@dataclass(frozen=True, slots=True)
class CompiledRule:
    rank: int
    position: int
    rule: Rule
    decision: Decision
    # (field name, check) in evaluation order, for `explain`: the first failing name is reported.
    checks: tuple[tuple[str, Check], ...]
    # Everything except what the index already guaranteed: the topic for a job rule, the target
    # for a step rule (and which of the two kinds the context is: each kind has its own index).
    hot: Check

    def first_failure(self, ctx: Mapping[str, Any]) -> str | None:
        for name, check in self.checks:
            if not check(ctx):
                return name
        return None


def _compile_rule(rule: Rule, rank: int, position: int, sets: Mapping[str, tuple[str, ...]]) -> CompiledRule:
    m = rule.match
    checks: list[tuple[str, Check]] = []
    if rule.is_step:
        checks.append(("targets", _target_check(tuple(m.targets))))
    else:
        checks.append(("targets", _no_target))
    if m.topics:
        checks.append(("topics", _topic_check(tuple(m.topics))))
    for key, allowed in m.labels.items():
        checks.append((f"labels.{key}", _label_check(key, frozenset(allowed))))
    if m.capabilities:
        checks.append(("capabilities", _capability_check(tuple(m.capabilities))))
    if m.tenants:
        checks.append(("tenants", _one_of("tenant", frozenset(m.tenants))))
    if m.risk_tags:
        checks.append(("risk_tags", _any_tag(frozenset(m.risk_tags))))
    if m.requester_roles:
        checks.append(("requester_roles", _one_of("requester_role", frozenset(m.requester_roles))))
    # Step rules compare with the semantics of section 9 (`operators`); job rules keep the job
    # semantics of `eq` / `in` / `not_in` and share every other operator.
    job = None if rule.is_step else compile_condition
    for i, cond in enumerate(rule.conditions):
        check = compile_step_condition(cond, getter=field_getter, sets=sets, job=job)
        checks.append((f"conditions[{i}]", check))
    decision = Decision(
        decision=rule.decision,
        rule_id=rule.id,
        reason=rule.reason,
        remediations=rule.remediations,
        approval_ttl=rule.approval_ttl,
        audit=rule.audit,
    )
    # Which index a context is looked up in guarantees a job rule's `targets` check (no target);
    # the trie guarantees the patterns of a rule filed under them. A rule grouped by its
    # constraints instead checks its own patterns.
    guaranteed: tuple[str, ...]
    if rule.is_step:
        guaranteed = ("targets",) if _in_trie(rule) else ()
    else:
        guaranteed = ("targets", "topics") if _in_trie(rule) else ("targets",)
    hot = _all_of([c for name, c in checks if name not in guaranteed])
    return CompiledRule(
        rank=rank, position=position, rule=rule, decision=decision, checks=tuple(checks), hot=hot
    )


def _conjuncts(conds: Sequence[Condition]) -> Iterator[Condition]:
    """The conditions a rule cannot match without: the top level, and inside `all`."""
    for cond in conds:
        if cond.op == "all":
            yield from _conjuncts(cond.children)
        else:
            yield cond


Constraint = tuple[str, tuple[str, ...]]


def constraints(rule: Rule) -> tuple[list[Constraint], list[Constraint]]:
    """The rule's equality constraints `(field, strings)`, from its match and from its conditions.

    Each is necessary: a context matches the rule only if the field's value (or, for a list, one
    of its items) is one of the strings. Values other than strings are never index keys (a
    boolean must not meet `1` in a hash map); such a test stays with the rule's own checks.
    """
    m = rule.match
    matched: list[Constraint] = []
    if m.capabilities and not any(capability_glob(c) is not None for c in m.capabilities):
        matched.append(("capability", tuple(m.capabilities)))
    if m.tenants:
        matched.append(("tenant", tuple(m.tenants)))
    matched += [(f"labels.{k}", tuple(v)) for k, v in sorted(m.labels.items())]
    if m.risk_tags:
        matched.append(("risk_tags", tuple(m.risk_tags)))
    if m.requester_roles:
        matched.append(("requester_role", tuple(m.requester_roles)))
    conditioned: dict[str, tuple[str, ...]] = {}
    for cond in _conjuncts(rule.conditions):
        if cond.op == "eq" and type(cond.value) is str:
            values: tuple[str, ...] = (cond.value,)
        elif cond.op == "in" and all(type(v) is str for v in cond.value):
            values = tuple(cond.value)
        else:
            continue
        # Two constraints on one field: either is necessary; keep the narrower.
        if cond.field not in conditioned or len(values) < len(conditioned[cond.field]):
            conditioned[cond.field] = values
    return matched, sorted(conditioned.items())


def _group_fields(cs: list[Constraint], sets: frozenset[str]) -> list[Constraint]:
    """The constraints a rule is grouped by (see the module docstring): the single-valued ones
    together, else the first on a list-valued field alone."""
    single = [c for c in cs if c[0] not in sets]
    if single:
        return single
    return cs[:1]


def _broad(g: TopicGlob, key: str) -> bool:
    """A wildcard with no literal prefix (every target starts with `adapter`): every context
    would find a rule filed under it."""
    return g.kind != "exact" and len(g.prefix) <= (1 if key == "target" else 0)


def _in_trie(rule: Rule) -> bool:
    """Whether the rule is filed under its topic (or target) patterns rather than grouped."""
    key = "target" if rule.is_step else "topic"
    patterns = rule.match.targets if rule.is_step else rule.match.topics
    if not patterns:
        return False
    compile_ = compile_target if rule.is_step else compile_glob
    if not all(_broad(compile_(p), key) for p in patterns):
        return True
    matched, conditioned = constraints(rule)
    return not (matched or conditioned)


@dataclass
class _Node:
    children: dict[str, _Node] = field(default_factory=dict)
    star: list[int] = field(default_factory=list)  # `prefix.*`: exactly one more segment
    dstar: list[int] = field(default_factory=list)  # `prefix.**`: one or more characters more
    regex: list[tuple[Any, int]] = field(default_factory=list)  # anything else


class Index:
    """Candidate lookup over compiled rules (see the module docstring).

    `key` is the context field the trie indexes: `topic` for job rules, `target` for step rules.
    """

    def __init__(self, rules: Sequence[CompiledRule], *, key: str = "topic") -> None:
        self.key = key
        self.sep = ":" if key == "target" else "."
        self._compile: Callable[[str], TopicGlob] = compile_target if key == "target" else compile_glob
        self._sets = (STEP_CONTEXT if key == "target" else JOB_CONTEXT).sets
        # Step rules compare strings folded (section 9): their keys are folded, and so are the
        # context's values when looked up.
        self.folds = key == "target"
        self.exact: dict[str, list[int]] = {}
        self.root = _Node()
        # Rules grouped by the equality fields they constrain: one dict lookup per group with
        # the context's values for all those fields at once (see `_add_grouped`).
        self.groups: dict[tuple[str, ...], dict[tuple[str, ...], list[int]]] = {}
        # Rules filed under nothing but a capability glob: (capability check, rank).
        self.cap_globs: list[tuple[Check, int]] = []
        self.always: list[int] = []
        for cr in rules:
            self._add(cr)
        # (getters of the group's fields, value tuple -> ranks), as `candidates` walks them.
        self._lookups: tuple[tuple[tuple[Getter, ...], dict[tuple[str, ...], list[int]]], ...] = tuple(
            (tuple(field_getter(f) for f in fields), by_key) for fields, by_key in self.groups.items()
        )
        self.topic_candidates = lru_cache(maxsize=8192)(self._topic_candidates)

    def _add(self, cr: CompiledRule) -> None:
        m, r = cr.rule.match, cr.rank
        patterns = m.targets if self.key == "target" else m.topics
        matched, conditioned = constraints(cr.rule)
        if _in_trie(cr.rule):
            for g in (self._compile(p) for p in dict.fromkeys(patterns)):
                if g.kind == "exact":
                    self.exact.setdefault(g.pattern, []).append(r)
                    continue
                node = self.root
                for seg in g.prefix:
                    node = node.children.setdefault(seg, _Node())
                if g.kind == "star":
                    node.star.append(r)
                elif g.kind == "dstar":
                    node.dstar.append(r)
                else:
                    node.regex.append((g.regex, r))
        elif matched or conditioned:
            self._add_grouped(cr, _group_fields(matched or conditioned, self._sets))
        elif m.capabilities:
            # A capability glob and nothing else to hash on: filter by the capability itself.
            self.cap_globs.append((_capability_check(tuple(m.capabilities)), r))
        else:
            self.always.append(r)

    def _add_grouped(self, cr: CompiledRule, fields: list[Constraint]) -> None:
        # Expand any-of lists into every combination of values, keeping the expansion small (a
        # field left out of the key is still checked by the rule itself).
        keys: list[tuple[str, ...]] = [()]
        used: list[str] = []
        for name, values in fields:
            if len(keys) * len(values) > 64:
                continue
            keys = [(*k, v) for k in keys for v in values]
            used.append(name)
        group = self.groups.setdefault(tuple(used), {})
        if self.folds:
            keys = [tuple(fold(v) for v in k) for k in keys]
        for key in dict.fromkeys(keys):
            group.setdefault(key, []).append(cr.rank)

    def _topic_candidates(self, topic: str | None) -> tuple[int, ...]:
        found: set[int] = set(self.always)
        if topic is not None:
            hit = self.exact.get(topic)
            if hit:
                found.update(hit)
            segs = topic.split(self.sep)
            n = len(segs)
            node: _Node | None = self.root
            depth = 0
            while node is not None:
                if depth < n:
                    if node.dstar:
                        found.update(node.dstar)
                    if node.star and depth + 1 == n:
                        found.update(node.star)
                for rx, r in node.regex:
                    if rx.fullmatch(topic):
                        found.add(r)
                if depth >= n:
                    break
                node = node.children.get(segs[depth])
                depth += 1
        return tuple(sorted(found))

    def candidates(self, ctx: Mapping[str, Any]) -> Sequence[int]:
        """Ranks of the rules that may match `ctx`, most restrictive first."""
        if self.folds:
            return self._folded_candidates(ctx)
        topic = ctx.get(self.key)
        base = self.topic_candidates(topic if isinstance(topic, str) else None)
        extra: list[int] = [r for check, r in self.cap_globs if check(ctx)]
        # A list-valued field (risk tags, a list of roles) matches when any item does.
        for getters, by_key in self._lookups:
            if len(getters) == 1:
                v = getters[0](ctx)
                if type(v) is str:
                    hit = by_key.get((v,))
                    if hit:
                        extra.extend(hit)
                elif isinstance(v, _SEQ):
                    for item in v:
                        if type(item) is str and (hit := by_key.get((item,))):
                            extra.extend(hit)
                continue
            for key in _group_keys(getters, ctx):
                hit = by_key.get(key)
                if hit:
                    extra.extend(hit)
        if not extra:
            return base
        # Posting lists rarely overlap (a rule sits under one key per value combination); a
        # duplicate is only checked twice, never answered differently.
        return sorted(base + tuple(extra))

    def _folded_candidates(self, ctx: Mapping[str, Any]) -> Sequence[int]:
        target = ctx.get(self.key)
        base = self.topic_candidates(target if isinstance(target, str) else None)
        extra: list[int] = [r for check, r in self.cap_globs if check(ctx)]
        for getters, by_key in self._lookups:
            for key in _folded_keys(getters, ctx):
                hit = by_key.get(key)
                if hit:
                    extra.extend(hit)
        if not extra:
            return base
        # Posting lists rarely overlap (a rule sits under one key per value combination); a
        # duplicate is only checked twice, never answered differently.
        return sorted(base + tuple(extra))


def _folded_keys(getters: tuple[Getter, ...], ctx: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """`_group_keys` with every string folded (the step index)."""
    keys: list[tuple[str, ...]] = [()]
    for get in getters:
        v = get(ctx)
        if type(v) is str:
            f = fold(v)
            keys = [(*k, f) for k in keys]
        elif isinstance(v, _SEQ):
            keys = [(*k, fold(item)) for k in keys for item in v if type(item) is str]
            if not keys:
                return keys
        else:
            return []
    return keys


def _group_keys(getters: tuple[Getter, ...], ctx: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """The context's value tuples for a group's fields (several when a value is a list)."""
    keys: list[tuple[str, ...]] = [()]
    for get in getters:
        v = get(ctx)
        if type(v) is str:
            keys = [(*k, v) for k in keys]
        elif isinstance(v, _SEQ):
            keys = [(*k, item) for k in keys for item in v if type(item) is str]
            if not keys:
                return keys
        else:
            return []
    return keys


def compile_rules(
    rules: Sequence[Rule],
    sets: Mapping[str, tuple[str, ...]] | None = None,
) -> tuple[list[CompiledRule], list[CompiledRule], Index, Index]:
    """Returns the rules in listed order, the same rules by rank, and the indexes over ranks of
    the job rules and of the step rules. `sets` are the bundle's named sets."""
    n = len(rules)
    named = sets or {}
    by_rank = sorted(
        (
            _compile_rule(rule, severity(rule.decision) * (n + 1) + i, i, named)
            for i, rule in enumerate(rules)
        ),
        key=lambda c: c.rank,
    )
    # Re-number ranks densely so that a rank indexes `by_rank` directly.
    dense = [replace(c, rank=i) for i, c in enumerate(by_rank)]
    listed = sorted(dense, key=lambda c: c.position)
    jobs = Index([c for c in dense if not c.rule.is_step], key="topic")
    steps = Index([c for c in dense if c.rule.is_step], key="target")
    return listed, dense, jobs, steps

"""Compile rules into an index: the request path looks up candidates, then checks only those.

Theory of operation. Each rule is filed under exactly one *index key*, the most selective fields
it constrains: its topic patterns if it has any (exact topics in a hash map, wildcard patterns in
a segment trie under their literal prefix); else all of its capability, tenant and label
constraints together (rules grouped by which of those fields they constrain, one hash lookup per
group); else its risk tags or roles; else the short list of rules that apply everywhere. A lookup gathers the
candidates for a context from each map, and evaluates them in *rank* order: rank sorts by
severity first (deny, require_approval, allow) and rule position second, so the first candidate
that fully matches is exactly the winner that "most restrictive wins, ties to the first listed"
asks for, and evaluation stops there.

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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache, lru_cache
from typing import Any

from gatehouse.policy.glob import TopicGlob, capability_glob, compile_glob, compile_target
from gatehouse.policy.model import Condition, Decision, Rule, severity

__all__ = ["Check", "CompiledRule", "Index", "compile_rules"]

Check = Callable[[Mapping[str, Any]], bool]
_ABSENT: Any = object()
_SEQ = (list, tuple, set, frozenset)


def _getter(field_name: str) -> Callable[[Mapping[str, Any]], Any]:
    if field_name.startswith("labels."):
        key = field_name[7:]

        def get_label(ctx: Mapping[str, Any]) -> Any:
            labels = ctx.get("labels")
            return labels.get(key, _ABSENT) if labels else _ABSENT

        return get_label
    if field_name.startswith(("params.", "session.")):
        # A step's nested fields: `params.a.b` walks mappings; anything else on the way is absent.
        path = tuple(field_name.split("."))

        def get_path(ctx: Mapping[str, Any]) -> Any:
            v: Any = ctx
            for part in path:
                if not isinstance(v, Mapping):
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
    get = _getter(cond.field)
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
        return v in bools if isinstance(v, bool) else v in others

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


def _compile_rule(rule: Rule, rank: int, position: int) -> CompiledRule:
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
    for i, cond in enumerate(rule.conditions):
        checks.append((f"conditions[{i}]", compile_condition(cond)))
    decision = Decision(
        decision=rule.decision,
        rule_id=rule.id,
        reason=rule.reason,
        remediations=rule.remediations,
        approval_ttl=rule.approval_ttl,
        audit=rule.audit,
    )
    indexed = "targets" if rule.is_step else "topics"
    hot = _all_of([c for name, c in checks if name not in (indexed, "targets")])
    return CompiledRule(
        rank=rank, position=position, rule=rule, decision=decision, checks=tuple(checks), hot=hot
    )


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
        self.exact: dict[str, list[int]] = {}
        self.root = _Node()
        # Topicless rules, grouped by the equality fields they constrain: one dict lookup per
        # group with the context's values for all those fields at once (see `_add_grouped`).
        self.groups: dict[tuple[str, ...], dict[tuple[str, ...], list[int]]] = {}
        self.by_tag: dict[str, list[int]] = {}
        self.by_role: dict[str, list[int]] = {}
        # Rules filed under nothing but a capability glob: (capability check, rank).
        self.cap_globs: list[tuple[Check, int]] = []
        self.always: list[int] = []
        for cr in rules:
            self._add(cr)
        self.topic_candidates = lru_cache(maxsize=8192)(self._topic_candidates)

    def _add(self, cr: CompiledRule) -> None:
        m, r = cr.rule.match, cr.rank
        patterns = m.targets if self.key == "target" else m.topics
        if patterns:
            for pattern in dict.fromkeys(patterns):
                g = self._compile(pattern)
                if g.kind == "exact":
                    self.exact.setdefault(pattern, []).append(r)
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
        elif m.capabilities or m.labels or m.tenants:
            self._add_grouped(cr)
        elif m.risk_tags:
            for t in m.risk_tags:
                self.by_tag.setdefault(t, []).append(r)
        elif m.requester_roles:
            for role in m.requester_roles:
                self.by_role.setdefault(role, []).append(r)
        else:
            self.always.append(r)

    def _add_grouped(self, cr: CompiledRule) -> None:
        m = cr.rule.match
        fields: list[tuple[str, tuple[str, ...]]] = []
        globbed = any(capability_glob(c) is not None for c in m.capabilities)
        if m.capabilities and not globbed:
            fields.append(("capability", tuple(m.capabilities)))
        if m.tenants:
            fields.append(("tenant", tuple(m.tenants)))
        fields += [(f"labels.{k}", tuple(v)) for k, v in sorted(m.labels.items())]
        # Expand any-of lists into every combination of values, keeping the expansion small (a
        # field left out of the key is still checked by the rule itself).
        keys: list[tuple[str, ...]] = [()]
        used: list[str] = []
        for name, values in fields:
            if len(keys) * len(values) > 64:
                continue
            keys = [(*k, v) for k in keys for v in values]
            used.append(name)
        if globbed and not used:
            # A capability glob and nothing else to hash on: filter by the capability itself.
            self.cap_globs.append((_capability_check(tuple(m.capabilities)), cr.rank))
            return
        group = self.groups.setdefault(tuple(used), {})
        for key in dict.fromkeys(keys):
            group.setdefault(key, []).append(cr.rank)

    def _group_keys(self, fields: tuple[str, ...], ctx: Mapping[str, Any]) -> list[tuple[str, ...]]:
        """The context's value tuples for `fields` (several when a value is a list)."""
        labels = ctx.get("labels") or {}
        keys: list[tuple[str, ...]] = [()]
        for f in fields:
            v = labels.get(f[7:]) if f.startswith("labels.") else ctx.get(f)
            if isinstance(v, str):
                keys = [(*k, v) for k in keys]
            elif isinstance(v, _SEQ):
                keys = [(*k, item) for k in keys for item in v if isinstance(item, str)]
            else:
                return []
            if not keys:
                return []
        return keys

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
        topic = ctx.get(self.key)
        base = self.topic_candidates(topic if isinstance(topic, str) else None)
        extra: list[int] = [r for check, r in self.cap_globs if check(ctx)]
        # A list-valued capability, tenant or role matches when any item does (as `_one_of`).
        for fields, by_key in self.groups.items():
            for key in self._group_keys(fields, ctx):
                hit = by_key.get(key)
                if hit:
                    extra.extend(hit)
        if self.by_tag:
            for tag in ctx.get("risk_tags") or ():
                if isinstance(tag, str):
                    extra.extend(self.by_tag.get(tag, ()))
        if self.by_role:
            roles = ctx.get("requester_role")
            for role in roles if isinstance(roles, _SEQ) else (roles,):
                if isinstance(role, str):
                    extra.extend(self.by_role.get(role, ()))
        if not extra:
            return base
        # Posting lists rarely overlap (a rule sits under one key per value combination); a
        # duplicate is only checked twice, never answered differently.
        return sorted(base + tuple(extra))


def compile_rules(
    rules: Sequence[Rule],
) -> tuple[list[CompiledRule], list[CompiledRule], Index, Index]:
    """Returns the rules in listed order, the same rules by rank, and the indexes over ranks of
    the job rules and of the step rules."""
    n = len(rules)
    by_rank = sorted(
        (_compile_rule(rule, severity(rule.decision) * (n + 1) + i, i) for i, rule in enumerate(rules)),
        key=lambda c: c.rank,
    )
    # Re-number ranks densely so that a rank indexes `by_rank` directly.
    dense = [replace(c, rank=i) for i, c in enumerate(by_rank)]
    listed = sorted(dense, key=lambda c: c.position)
    jobs = Index([c for c in dense if not c.rule.is_step], key="topic")
    steps = Index([c for c in dense if c.rule.is_step], key="target")
    return listed, dense, jobs, steps

"""`lint(policy)`: mistakes a bundle can load with, found before it ships.

    findings = gatehouse.policy.lint.lint(gatehouse.policy.load(text))
    [Finding(kind="shadowed", severity="error", rules=("allow-deploys", "deny-all-deploys"), ...)]

Kinds (each finding names its rules, their lines and one line of why):

- `shadowed`: a rule that can never decide anything, because a rule that outranks it (more
  restrictive, or as restrictive and listed earlier) matches every request it matches. An error
  when the two decisions differ (the rule's decision never happens), a warning when they agree
  (the rule is redundant).
- `conflict` (warning): two rules whose matches overlap with different decisions. On the overlap
  the more restrictive one always wins; the finding says which, and which requests the other
  loses. `overlap` tells an exception carved out of a broader rule (`carve_out`: the winner's
  requests are all inside the loser's) from a partial overlap (`partial`).
- `reason_order` (warning): two overlapping rules with the same decision and different reasons:
  which reason a user sees depends on the order the rules are listed in.
- `unreachable` (error): a rule that matches nothing: a target no step can take (outside
  `adapter:<adapter>:<action>`, or an action its adapter's catalog entry does not list, which the
  step gate refuses before policy), a condition contradicting itself or the match (`gt: 10` with
  `lt: 5`, `env: prod` with `eq: {labels.env: staging}`), `in_set` on sets without members.
- `remediation_denied`: a remediation whose rewritten request the policy denies again (error),
  or sends back to the same rule (warning). The request is built from the rule's own match
  (its first topic, labels, capability ...) with the remediation applied, and decided by the
  engine itself.
- `approval_ttl` (warning): a `require_approval` rule without `approval_ttl` when the service's
  default approval lifetime (`approval_default`) is longer than `long_approval`.
- `catalog` (warning): a step rule (or output rule) naming an adapter absent from a non-empty
  catalog (the step is then judged by policy alone: a typo is the likelier reason), or an action
  its adapter does not list, when another of the rule's targets can still match.

Only what is provable is claimed (see `gatehouse.policy._space`): an overlap is assumed unless
the two matches provably exclude each other, and shadowing needs a proof that one match
contains the other.

Speed: rules are filed in a trie under the literal prefix of their topic (target) globs, as the
engine's index files them; two globs can only share a string when one prefix extends the other,
so a rule is compared with the rules above it in the trie and beside it, never with all others.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from gatehouse.policy._globs import intersects
from gatehouse.policy._space import Space, covers, disjoint
from gatehouse.policy.engine import EvaluationError, Policy
from gatehouse.policy.glob import compile_glob, compile_target
from gatehouse.policy.model import DENY, REQUIRE_APPROVAL, Rule, severity

__all__ = ["ERROR", "KINDS", "WARNING", "Finding", "lint"]

ERROR = "error"
WARNING = "warning"
KINDS = (
    "shadowed",
    "conflict",
    "reason_order",
    "unreachable",
    "remediation_denied",
    "approval_ttl",
    "catalog",
)
# The service's approval lifetime when a rule gives none (`gatehouse.domain.approvals.DEFAULT_TTL`;
# the pure core cannot import it, the CLI passes it) and the lifetime past which an approval
# should be bounded by its rule.
DEFAULT_APPROVAL = 15 * 60
LONG_APPROVAL = 60 * 60
# Every step's target has this shape (`gatehouse.domain.steps.target_of`).
_ANY_TARGET = "adapter:*:*"


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    severity: str
    rules: tuple[str, ...]
    lines: tuple[int | None, ...]
    why: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "severity": self.severity,
            "rules": list(self.rules),
            "lines": list(self.lines),
            "why": self.why,
            **({"details": self.details} if self.details else {}),
        }

    def text(self) -> str:
        where = ", ".join(
            f"`{r}` (line {ln})" if ln else f"`{r}`" for r, ln in zip(self.rules, self.lines, strict=True)
        )
        return f"{self.severity}: {self.kind}: {where}: {self.why}"


def _finding(kind: str, sev: str, rules: Sequence[Rule], why: str, **details: Any) -> Finding:
    return Finding(
        kind=kind,
        severity=sev,
        rules=tuple(r.id for r in rules),
        lines=tuple(r.line for r in rules),
        why=why,
        details=details,
    )


def lint(
    policy: Policy,
    *,
    approval_default: int = DEFAULT_APPROVAL,
    long_approval: int = LONG_APPROVAL,
) -> list[Finding]:
    """Every finding for `policy`, errors first, then in the order of the rules' lines."""
    rules = policy.rules
    spaces = [Space.of(r, policy.sets, _effects(policy, r)) for r in rules]
    out: list[Finding] = []
    dead: set[int] = set()
    for i, sp in enumerate(spaces):
        why = sp.contradiction or _catalog_dead(policy, sp.rule, out)
        if why is not None:
            out.append(_finding("unreachable", ERROR, [sp.rule], why))
            dead.add(i)
    out.extend(_pairs(spaces, dead))
    out.extend(_remediations(policy, dead))
    if approval_default > long_approval:
        for r in rules:
            if r.decision == REQUIRE_APPROVAL and r.approval_ttl is None:
                out.append(
                    _finding(
                        "approval_ttl",
                        WARNING,
                        [r],
                        f"no `approval_ttl`: an approval may wait or be used for the default "
                        f"{_duration(approval_default)}; give the rule its own bound",
                    )
                )
    for o in policy.output_rules:
        for pattern in o.targets:
            adapter = _literal_adapter(pattern)
            if policy.catalog and adapter is not None and policy.catalog.adapter(adapter) is None:
                out.append(
                    Finding(
                        "catalog",
                        WARNING,
                        (o.id,),
                        (o.line,),
                        f"target `{pattern}` names adapter `{adapter}`, which the catalog does not "
                        f"list (adapters: {', '.join(sorted(policy.catalog.adapters))})",
                    )
                )
    out.sort(key=lambda f: (f.severity != ERROR, min((ln or 0) for ln in f.lines) if f.lines else 0))
    return out


def _duration(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# -- the catalog ---------------------------------------------------------------------------------


def _literal_adapter(pattern: str) -> str | None:
    segs = pattern.split(":")
    if len(segs) >= 2 and segs[0] == "adapter" and "*" not in segs[1]:
        return segs[1]
    return None


def _effects(policy: Policy, rule: Rule) -> frozenset[str | None] | None:
    """The catalog's effects of the actions a step rule's targets name, when every target names
    one listed action of a listing adapter (else None: the effect is not known)."""
    if not rule.is_step or not policy.catalog:
        return None
    out: set[str | None] = set()
    for pattern in rule.match.targets:
        segs = pattern.split(":")
        if len(segs) != 3 or "*" in pattern:
            return None
        adapter = policy.catalog.adapter(segs[1])
        if adapter is None or not adapter.lists_actions:
            return None
        action = next((a for name, a in adapter.actions.items() if name.lower() == segs[2]), None)
        if action is None:
            return None
        out.add(action.effect)
    return frozenset(out)


def _catalog_dead(policy: Policy, rule: Rule, out: list[Finding]) -> str | None:
    """Why none of the rule's targets can match a step, or None; warnings for the targets that
    cannot while others can are appended to `out`."""
    if not rule.is_step:
        return None
    catalog = policy.catalog
    reasons: list[str] = []
    for pattern in rule.match.targets:
        why = None
        if not intersects(pattern, _ANY_TARGET, ":"):
            why = f"target `{pattern}` is not of the form `adapter:<adapter>:<action>`"
        adapter_name = _literal_adapter(pattern)
        if why is None and catalog and adapter_name is not None:
            adapter = catalog.adapter(adapter_name)
            if adapter is None:
                out.append(
                    _finding(
                        "catalog",
                        WARNING,
                        [rule],
                        f"target `{pattern}` names adapter `{adapter_name}`, which the catalog does "
                        f"not list (adapters: {', '.join(sorted(catalog.adapters))}); its steps are "
                        "judged by policy alone",
                    )
                )
            elif adapter.lists_actions:
                segs = pattern.split(":")
                action_glob = ":".join(segs[2:])
                if len(segs) >= 3 and not any(
                    intersects(action_glob, a.lower(), ":") for a in adapter.actions
                ):
                    why = (
                        f"target `{pattern}`: adapter `{adapter_name}` lists no such action "
                        f"(actions: {', '.join(sorted(adapter.actions))}); the step gate refuses it "
                        "before policy"
                    )
        if why is not None:
            reasons.append(why)
    if len(reasons) == len(rule.match.targets):
        return "; ".join(reasons)
    for why in reasons:
        out.append(_finding("catalog", WARNING, [rule], why))
    return None


# -- pairs -----------------------------------------------------------------------------------------


class _Trie:
    """Rules by the literal prefix of their globs; `None` globs (any topic) sit at the root."""

    __slots__ = ("children", "rules")

    def __init__(self) -> None:
        self.children: dict[str, _Trie] = {}
        self.rules: list[int] = []


def _prefix(pattern: str, step: bool) -> tuple[str, ...]:
    return (compile_target if step else compile_glob)(pattern).prefix


def _candidate_pairs(spaces: Sequence[Space], dead: set[int]) -> Iterator[tuple[int, int]]:
    """Every pair of live rules of one kind whose globs may share a string, each pair once."""
    for step in (False, True):
        root = _Trie()
        homes: list[tuple[int, list[_Trie]]] = []
        for i, sp in enumerate(spaces):
            if sp.step != step or i in dead:
                continue
            nodes: list[_Trie] = []
            for pattern in sp.globs or ("",):
                node = root
                path: list[_Trie] = [node]
                for seg in _prefix(pattern, step) if pattern else ():
                    node = node.children.setdefault(seg, _Trie())
                    path.append(node)
                if i not in node.rules:
                    node.rules.append(i)
                nodes.extend(path)
            homes.append((i, nodes))
        seen: set[tuple[int, int]] = set()
        for i, nodes in homes:
            for node in _unique(nodes):
                for j in node.rules:
                    if j == i:
                        continue
                    pair = (i, j) if i < j else (j, i)
                    if pair not in seen:
                        seen.add(pair)
                        yield pair


def _unique(nodes: list[_Trie]) -> list[_Trie]:
    out: list[_Trie] = []
    ids: set[int] = set()
    for n in nodes:
        if id(n) not in ids:
            ids.add(id(n))
            out.append(n)
    return out


def _pairs(spaces: Sequence[Space], dead: set[int]) -> list[Finding]:
    shadowed: dict[int, int] = {}
    overlaps: list[tuple[int, int, bool]] = []
    ranks = [(severity(sp.rule.decision), i) for i, sp in enumerate(spaces)]
    for x, y in _candidate_pairs(spaces, dead):
        a, b = spaces[x], spaces[y]
        if disjoint(a, b):
            continue
        w, lo = (x, y) if ranks[x] < ranks[y] else (y, x)
        win, lose = spaces[w], spaces[lo]
        if covers(win, lose):
            if lo not in shadowed or w < shadowed[lo]:
                shadowed[lo] = w
        elif win.rule.decision != lose.rule.decision:
            overlaps.append((w, lo, covers(lose, win)))
        elif win.rule.reason != lose.rule.reason:
            overlaps.append((w, lo, False))
    out: list[Finding] = []
    for lo, w in sorted(shadowed.items()):
        winner, loser = spaces[w].rule, spaces[lo].rule
        if winner.decision != loser.decision:
            out.append(
                _finding(
                    "shadowed",
                    ERROR,
                    [loser, winner],
                    f"never decides: `{winner.id}` ({winner.decision}) matches every request it "
                    f"matches and wins over `{loser.decision}`",
                )
            )
        else:
            order = "is listed earlier" if w < lo else "is more restrictive"
            out.append(
                _finding(
                    "shadowed",
                    WARNING,
                    [loser, winner],
                    f"redundant: `{winner.id}` ({winner.decision}) matches every request it matches "
                    f"and {order}, so its reason is never given",
                )
            )
    # One finding per winning rule, naming every rule it wins over (a broad rule with many
    # exceptions would otherwise fill the screen with one line per pair).
    conflicts: dict[int, list[tuple[int, bool]]] = {}
    orders: dict[int, list[int]] = {}
    for w, lo, carve in overlaps:
        if lo in shadowed or w in shadowed:
            continue
        if spaces[w].rule.decision != spaces[lo].rule.decision:
            conflicts.setdefault(w, []).append((lo, carve))
        else:
            orders.setdefault(w, []).append(lo)
    for w, losers in sorted(conflicts.items()):
        losers.sort()
        winner = spaces[w].rule
        parts = []
        for lo, carve in losers:
            loser = spaces[lo].rule
            if carve:
                parts.append(
                    f"`{loser.id}` ({loser.decision}) loses every request `{winner.id}` matches "
                    f"({_describe_overlap(spaces[w], spaces[lo])}): an exception inside it"
                )
            else:
                parts.append(
                    f"`{loser.id}` ({loser.decision}) loses the requests both match "
                    f"({_describe_overlap(spaces[w], spaces[lo])})"
                )
        head = f"`{winner.id}` ({winner.decision}) wins where it overlaps"
        why = f"{head}: {parts[0]}" if len(parts) == 1 else f"{head} {len(parts)} rules: " + "; ".join(parts)
        out.append(
            _finding(
                "conflict",
                WARNING,
                [winner, *(spaces[lo].rule for lo, _ in losers)],
                why,
                winner=winner.id,
                losers=[
                    {
                        "rule": spaces[lo].rule.id,
                        "decision": spaces[lo].rule.decision,
                        "overlap": "carve_out" if carve else "partial",
                    }
                    for lo, carve in losers
                ],
            )
        )
    for w, later in sorted(orders.items()):
        later.sort()
        first = spaces[w].rule
        shown = ", ".join(
            f"`{spaces[lo].rule.id}` ({_describe_overlap(spaces[w], spaces[lo])})" for lo in later
        )
        out.append(
            _finding(
                "reason_order",
                WARNING,
                [first, *(spaces[lo].rule for lo in later)],
                f"where it overlaps {shown}, the decision is the same ({first.decision}) and the reason "
                f"given is `{first.id}`'s only because it is listed first",
            )
        )
    return out


def _describe_overlap(a: Space, b: Space) -> str:
    """A short description of requests both rules match: their combined constraints."""
    parts: list[str] = []
    globs = a.globs or b.globs
    if a.globs and b.globs:
        # The winner's patterns that meet one of the loser's.
        globs = tuple(p for p in a.globs if any(intersects(p, q, a.sep) for q in b.globs))
    if globs:
        parts.append(("targets " if a.step else "topics ") + ", ".join(globs))
    fields = sorted(set(a.folded) | set(b.folded))
    for name in fields:
        va, vb = a.folded.get(name), b.folded.get(name)
        vals = va & vb if va is not None and vb is not None else (va if va is not None else vb)
        if vals is not None:
            parts.append(f"{name} in {sorted(vals)}" if len(vals) > 1 else f"{name}={next(iter(vals), '')}")
    conds = len(a.rule.conditions) + len(b.rule.conditions)
    if conds:
        parts.append("where the conditions of both hold")
    return "; ".join(parts) or "every request"


# -- remediations ----------------------------------------------------------------------------------


def _instance(pattern: str) -> str:
    return pattern.replace("**", "x").replace("*", "x")


def _witness(rule: Rule) -> dict[str, Any]:
    """A job context the rule's match admits: its first topic, label values, capability ..."""
    m = rule.match
    ctx: dict[str, Any] = {
        "topic": _instance(m.topics[0]) if m.topics else "job.lint",
        "tenant": m.tenants[0] if m.tenants else "default",
        "labels": {k: v[0] for k, v in m.labels.items() if v},
        "requester_role": m.requester_roles[0] if m.requester_roles else "agent",
        "risk_tags": [m.risk_tags[0]] if m.risk_tags else [],
    }
    if m.capabilities:
        ctx["capability"] = _instance(m.capabilities[0]) if m.capabilities[0] not in ("*", "**") else "x"
    for cond in rule.conditions:
        if cond.op == "eq" and type(cond.value) is str:
            if cond.field.startswith("labels."):
                ctx["labels"].setdefault(cond.field[7:], cond.value)
            elif cond.field in ("tenant", "capability", "requester_role"):
                ctx.setdefault(cond.field, cond.value)
    return ctx


def _remediations(policy: Policy, dead: set[int]) -> list[Finding]:
    out: list[Finding] = []
    for i, rule in enumerate(policy.rules):
        if rule.is_step or not rule.remediations or i in dead:
            continue
        base = _witness(rule)
        for rem in rule.remediations:
            ctx = {**base, "labels": dict(base["labels"])}
            for key, value in rem.set.items():
                if key == "prompt":
                    found = policy.classifier.classify(str(value))
                    ctx["labels"].update(found.labels)
                    ctx["risk_tags"] = sorted({*ctx["risk_tags"], *found.risk_tags})
                elif key == "risk_tags":
                    ctx["risk_tags"] = list(value)
                else:
                    ctx[key] = value
            ctx["labels"].update(rem.set_labels)
            try:
                d = policy.decide(ctx)
            except EvaluationError:
                continue
            shown = f"topic `{ctx['topic']}`" + (
                f", capability `{ctx['capability']}`" if ctx.get("capability") else ""
            )
            if d.decision == DENY:
                other = policy.rule(d.rule_id)
                rules = [rule] + ([other] if other is not None and other is not rule else [])
                out.append(
                    _finding(
                        "remediation_denied",
                        ERROR,
                        rules,
                        f"remediation `{rem.id}` rewrites the request to {shown}, which "
                        f"`{d.rule_id}` denies again",
                        remediation=rem.id,
                    )
                )
            elif d.rule_id == rule.id:
                out.append(
                    _finding(
                        "remediation_denied",
                        WARNING,
                        [rule],
                        f"remediation `{rem.id}` rewrites the request to {shown}, which the same "
                        f"rule decides again ({d.decision})",
                        remediation=rem.id,
                    )
                )
    return out

"""`Policy`: a loaded, compiled bundle that decides and explains.

    policy = gatehouse.policy.load(text)
    policy.decide({"topic": "job.deploy.apply", "labels": {"env": "prod"}})
    -> Decision(decision="require_approval", rule_id="require-approval-prod-write", ...)

The context is flat, with the fields its stage declares (`gatehouse.policy.model.JOB_CONTEXT`,
DESIGN.md section 3): `topic`, `tenant`, `labels` (str -> str), `capability`, `risk_tags`
(list), `requester_role`, `approved` (bool); a step (`STEP_CONTEXT`, section 9) adds `target`,
`adapter`, `action`, `effect`, `detected`, `params` and `session` (`untrusted_read`,
`step_count`, `denied_count`, and `allowed_targets`: the targets of its earlier allowed steps, which
`session_count` counts). Missing keys mean absent. Two inputs of a step are no fields a rule
compares but what its operators read: `provenance` (a `gatehouse.policy.Provenance`, for
`from_untrusted` / `from_prompt`) and `detections` (param path -> detector names, see
`gatehouse.policy.detections`, for `detects`).

A context with a `target` (`adapter:<adapter>:<action>`) is a tool call: `decide` judges it by
the step rules alone (rules that name `targets`), and any other context by the job rules alone,
so a step rule can never decide a job or the reverse. Before a job is decided, the bundle's
`require` entries say which fields it must carry: `missing_fields` answers that, and the caller
refuses the job (422 `missing_field`) before any decision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gatehouse.errors import GatehouseError
from gatehouse.ingress import Classifier
from gatehouse.policy.catalog import Catalog
from gatehouse.policy.compiler import compile_rules
from gatehouse.policy.glob import compile_glob
from gatehouse.policy.loader import Bundle, parse_bundle
from gatehouse.policy.model import (
    JOB_CONTEXT,
    STEP_CONTEXT,
    Condition,
    Decision,
    Explanation,
    FailModeOverride,
    OutputRule,
    Requirement,
    Rule,
    RuleTrace,
)

__all__ = ["EvaluationError", "Policy", "load"]


class EvaluationError(GatehouseError):
    """The context could not be evaluated (wrong value types). The kernel applies the fail mode."""

    code = "policy_evaluation_error"


_SEQUENCES = (list, tuple, set, frozenset)
_SCALARS = (str, int, float)  # bool is an int
# The fields read whole, which must hold a scalar or a flat list: a job's, and a step's besides.
_FIELDS = JOB_CONTEXT.fields
_STEP_FIELDS = tuple(f for f in STEP_CONTEXT.fields if f not in JOB_CONTEXT.fields and f != "target")


def _bad_value(v: Any) -> bool:
    """Not None, a scalar, or a flat list of scalars."""
    if isinstance(v, _SCALARS):
        return False
    if not isinstance(v, _SEQUENCES):
        return True
    # A loop, not any(<genexpr>): this runs on every decision.
    for item in v:  # noqa: SIM110
        if item is not None and not isinstance(item, _SCALARS):
            return True
    return False


def _check_context(ctx: Any) -> None:
    """Reject a malformed context up front, whichever rules the index happens to look at.

    Otherwise a bad value (`labels: [...]`, an unhashable label value) raised or not depending on
    which candidates the index picked, so `decide` and `scan` disagreed, and a string
    `risk_tags` was silently read as its characters. A field is None, a scalar, or a flat list
    of scalars; `labels` maps to scalars; `risk_tags` is a list.
    """
    # `type(...) is dict` first: the ABC check behind isinstance(x, Mapping) is slow.
    if type(ctx) is not dict and not isinstance(ctx, Mapping):
        raise EvaluationError("the request context must be a mapping")
    get = ctx.get
    for name in _FIELDS:
        v = get(name)
        if v is not None and type(v) is not str and _bad_value(v):
            raise EvaluationError(f"`{name}` must be a string or a list of strings")
    target = get("target")
    if target is not None:
        if type(target) is not str:
            raise EvaluationError("`target` must be a string")
        for name in _STEP_FIELDS:
            v = get(name)
            if v is not None and type(v) is not str and _bad_value(v):
                raise EvaluationError(f"`{name}` must be a string or a list of strings")
    tags = get("risk_tags")
    if tags is not None and not isinstance(tags, _SEQUENCES):
        raise EvaluationError("`risk_tags` must be a list of strings")
    labels = get("labels")
    if labels is not None:
        if type(labels) is not dict and not isinstance(labels, Mapping):
            raise EvaluationError("`labels` must be a mapping of strings")
        for v in labels.values():
            if v is not None and type(v) is not str and not isinstance(v, _SCALARS):
                raise EvaluationError("`labels` must be a mapping of strings")


def load(text: str | bytes) -> Policy:
    """Parse, validate and compile a bundle (YAML or JSON). Raises `PolicyError`."""
    return Policy(parse_bundle(text), text if isinstance(text, str) else text.decode("utf-8"))


class Policy:
    """An immutable, compiled policy bundle."""

    def __init__(self, bundle: Bundle, text: str = "") -> None:
        # The validated bundle this policy was compiled from (`canonical_data` writes it).
        self.bundle: Bundle = bundle
        self.text = text
        self.name: str = bundle.name
        self.version: int = bundle.version
        self.description: str = bundle.description
        self.snapshot: str = bundle.snapshot
        self.canonical: str = bundle.canonical
        self.default_decision: str = bundle.default_decision
        self.fail_mode: str = bundle.fail_mode
        self.fail_mode_overrides: tuple[FailModeOverride, ...] = bundle.fail_mode_overrides
        self.rules: tuple[Rule, ...] = bundle.rules
        self.output_rules: tuple[OutputRule, ...] = bundle.output_rules
        self.classifiers: tuple[Mapping[str, Any], ...] = bundle.classifiers
        # The ingress classifier this bundle runs: the default table plus `classifiers`,
        # compiled (and so validated) when the bundle loaded.
        self.classifier: Classifier = bundle.classifier
        self.require: tuple[Requirement, ...] = bundle.require
        # The adapter catalog (empty without `adapters:`): the step gate's schemas and effects.
        self.catalog: Catalog = bundle.catalog
        self._listed, self._by_rank, self._index, self._step_index = compile_rules(bundle.rules, bundle.sets)
        self.sets: Mapping[str, tuple[str, ...]] = bundle.sets
        self._default = Decision(
            decision=bundle.default_decision,
            rule_id="default",
            reason=f"no rule matched; default_decision is {bundle.default_decision}",
        )
        self.fields: frozenset[str] = _fields_read(bundle)

    def __repr__(self) -> str:
        return f"<Policy {self.name!r} rules={len(self.rules)} snapshot={self.snapshot[:12]}>"

    def decide(self, ctx: Mapping[str, Any]) -> Decision:
        """The decision for `ctx`: the most restrictive matching rule, ties to the first listed."""
        _check_context(ctx)
        by_rank = self._by_rank
        index = self._index if ctx.get("target") is None else self._step_index
        try:
            for rank in index.candidates(ctx):
                cr = by_rank[rank]
                if cr.hot(ctx):
                    return cr.decision
        except (TypeError, AttributeError) as exc:
            raise EvaluationError(f"cannot evaluate the request context: {exc}") from exc
        return self._default

    def scan(self, ctx: Mapping[str, Any]) -> Decision:
        """The same answer as `decide`, by a linear scan of every rule (reference and baseline)."""
        _check_context(ctx)
        best = None
        try:
            for cr in self._listed:
                if (best is None or cr.rank < best.rank) and cr.first_failure(ctx) is None:
                    best = cr
        except (TypeError, AttributeError) as exc:
            raise EvaluationError(f"cannot evaluate the request context: {exc}") from exc
        return best.decision if best is not None else self._default

    def explain(self, ctx: Mapping[str, Any]) -> Explanation:
        """Every rule with matched / first failed field, and which rule won and why."""
        _check_context(ctx)
        try:
            traces = tuple(
                RuleTrace(
                    rule_id=cr.rule.id,
                    decision=cr.rule.decision,
                    matched=(failed := cr.first_failure(ctx)) is None,
                    failed_field=failed,
                )
                for cr in self._listed
            )
        except (TypeError, AttributeError) as exc:
            raise EvaluationError(f"cannot evaluate the request context: {exc}") from exc
        decision = self.decide(ctx)
        matched = [t for t in traces if t.matched]
        if decision.rule_id == "default":
            why = f"no rule matched, so default_decision `{self.default_decision}` applies"
        elif len(matched) == 1:
            why = f"`{decision.rule_id}` is the only matching rule"
        else:
            same = [t.rule_id for t in matched if t.decision == decision.decision]
            why = (
                f"{len(matched)} rules matched; `{decision.decision}` is the most restrictive "
                "decision among them"
            )
            if len(same) > 1:
                why += f" and `{decision.rule_id}` is listed first of the {len(same)} rules that give it"
        return Explanation(
            decision=decision,
            rules=traces,
            winner=decision.rule_id,
            why=why,
            snapshot=self.snapshot,
        )

    def missing_fields(self, topic: str, job: Mapping[str, Any]) -> list[str]:
        """The fields `require` asks of a job on `topic` that `job` does not carry, in order.

        `job` is a job body after ingress (`prompt`, `labels`, `meta`). A field counts as
        carried when it is present, not null and not an empty string or list: a requirement
        that an empty value met would be as easy to dodge as one that is absent.
        """
        out: list[str] = []
        for req in self.require:
            if not any(compile_glob(p).matches(topic) for p in req.topics):
                continue
            for name in req.fields:
                if name not in out and _blank(_job_field(job, name)):
                    out.append(name)
        return out

    def fail_mode_for(self, topic: str | None) -> str:
        """`closed` or `open` for `topic`: the first matching override, else the bundle's mode."""
        if topic:
            for override in self.fail_mode_overrides:
                if any(compile_glob(p).matches(topic) for p in override.topics):
                    return override.fail_mode
        return self.fail_mode

    def rule(self, rule_id: str) -> Rule | None:
        for r in self.rules:
            if r.id == rule_id:
                return r
        return None

    def remediation(self, rule_id: str, remediation_id: str) -> Any:
        rule = self.rule(rule_id)
        if rule is None:
            return None
        return next((r for r in rule.remediations if r.id == remediation_id), None)


def _job_field(job: Mapping[str, Any], name: str) -> Any:
    root, _, key = name.partition(".")
    value = job.get(root)
    if not key:
        return value
    return value.get(key) if isinstance(value, Mapping) else None


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str | list | tuple | dict) and not value)


# What the operators read besides their field (the caller's inputs of section 9).
_IMPLIED = {
    "from_untrusted": "provenance",
    "from_prompt": "provenance",
    "detects": "detections",
    "session_count": "session.allowed_targets",
}


def _condition_fields(cond: Condition, out: set[str]) -> None:
    # `labels.env` and `params.a.b` alike: the cache reads each with `field_getter`. `$` is the
    # element of `each` / `some`, read through their field.
    if cond.field and not cond.field.startswith("$"):
        out.add(cond.field)
    if cond.op in _IMPLIED:
        out.add(_IMPLIED[cond.op])
    for child in cond.children:
        _condition_fields(child, out)


def _fields_read(bundle: Bundle) -> frozenset[str]:
    """The context fields some rule reads: a cache key needs only these."""
    out: set[str] = set()
    rules: Sequence[Rule] = bundle.rules
    for rule in rules:
        m = rule.match
        if m.targets:
            out.add("target")
        if m.topics:
            out.add("topic")
        out.update(f"labels.{k}" for k in m.labels)
        if m.capabilities:
            out.add("capability")
        if m.tenants:
            out.add("tenant")
        if m.risk_tags:
            out.add("risk_tags")
        if m.requester_roles:
            out.add("requester_role")
        for cond in rule.conditions:
            _condition_fields(cond, out)
    if any(r.is_step for r in rules):
        # Whether a context is a job or a step decides which rules apply at all.
        out.add("target")
    return frozenset(out)

"""Steps as values: a proposed tool call, its session's history, and the policy context of both.

    ctx = step_context(policy, step_of(body))
    policy.decide(ctx)

One pure function builds what a step rule reads (DESIGN.md section 9), for every path that decides
a step: the offline `gatehouse policy simulate|explain|test --step` and the server's step gate.
Were they two functions, a fixture would test a different gate than the one that runs.

A step body is `{adapter, action, params?, effect?, approved?, topic?, tenant?, capability?,
requester_role?, session?: {task?, history?: [...]}}`; each history item is an earlier step of the
session: `{adapter, action, params?, output?, decision?, trusted?}` (`decision` defaults to
`allow`; `trusted`, when not given, is what the bundle's adapter catalog says of the action: its
output is untrusted unless its catalog entry says `output: trusted`). The context holds:

- `target` (`adapter:<adapter>:<action>`), `adapter`, `action`, `params`, and `effect`: the
  catalog's for a listed action (else the body's, when given; else absent);
- `labels`: what the ingress classifier derives from the params' string values;
- `detections` / `detected`: the output detectors that fire on the params' strings;
- `session`: `untrusted_read` (an earlier allowed step returned untrusted output), `step_count`
  (earlier steps), `denied_count` (earlier denied steps), `allowed_targets` (targets of the
  earlier allowed steps, oldest first, for `session_count`);
- `provenance`: the trusted task, and the outputs of the earlier allowed untrusted steps;
- the job's fields when given (`topic`, `tenant` default `default`, `capability`,
  `requester_role` default `agent`, `approved`).

Malformed bodies raise `BadRequest` with code `invalid_step`.

Before the policy, the catalog judges a step (`param_problem`, for the server's gate and the
offline tools alike): an action a listing adapter lacks is refused outright (`unknown_action`,
404: no decision is taken on a tool that does not exist), and params that break the action's
schema are denied with rule `param_schema` and the schema error (its path and rule, never the
value) as the reason. Adapters the catalog does not list are judged by policy alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gatehouse.errors import BadRequest, NotFound
from gatehouse.ingress.canon import canon_labels
from gatehouse.ingress.classify import Classifier
from gatehouse.output import ALL_DETECTORS
from gatehouse.policy import DECISIONS, DENY, Decision, Policy, Provenance, detected, detections_of
from gatehouse.policy.catalog import EMPTY_CATALOG, Catalog
from gatehouse.policy.provenance import strings_in

__all__ = [
    "APPROVED",
    "PARAM_SCHEMA_RULE",
    "HistoryStep",
    "Step",
    "advance_facts",
    "catalog_of",
    "detector_scan",
    "param_problem",
    "pre_policy",
    "session_facts",
    "step_context",
    "step_of",
    "target_of",
]

# The context field (and decision record field) that says a person approved the step.
APPROVED = "approved"
PARAM_SCHEMA_RULE = "param_schema"

_STEP_KEYS = (
    "adapter",
    "action",
    "params",
    "effect",
    "approved",
    "topic",
    "tenant",
    "capability",
    "requester_role",
    "session",
    "step_id",
    "session_id",
    "job_id",
)
_SESSION_KEYS = ("task", "prompt", "history")
_HISTORY_KEYS = ("adapter", "action", "params", "output", "decision", "trusted", "step_id", "status")
_EFFECTS = ("read", "write", "destructive")


@dataclass(frozen=True, slots=True)
class HistoryStep:
    """An earlier step of the session, as the gate remembers it."""

    adapter: str
    action: str
    params: Mapping[str, Any] = field(default_factory=dict)
    output: Any = None
    decision: str = "allow"
    # None: not said (an offline fixture), and the catalog decides; the server always says.
    trusted: bool | None = False
    # Derived once: every later step of the session reads it (`session.allowed_targets`).
    target: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "target", target_of(self.adapter, self.action))


@dataclass(frozen=True, slots=True)
class Step:
    """A proposed tool call with the session it runs in (see the module docstring)."""

    adapter: str
    action: str
    params: Mapping[str, Any] = field(default_factory=dict)
    effect: str | None = None
    job: Mapping[str, Any] = field(default_factory=dict)
    task: str = ""
    history: Sequence[HistoryStep] = ()

    @property
    def target(self) -> str:
        return target_of(self.adapter, self.action)


def target_of(adapter: str, action: str) -> str:
    """The target rules match: `adapter:<adapter>:<action>`, lower-cased as topics are (a rule on
    `adapter:bank:*` must not be escaped by calling `BANK` or `Send_Money`; the loader lower-cases
    target patterns alike)."""
    return f"adapter:{adapter}:{action}".lower()


def _bad(message: str) -> BadRequest:
    return BadRequest(message, code="invalid_step")


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _name(body: Mapping[str, Any], key: str, where: str) -> str:
    if key not in body:
        raise _bad(f"{where} needs `{key}`")
    value = body[key]
    if not isinstance(value, str) or not value:
        raise _bad(f"{where}: `{key}` must be a non-empty string, got `{_show(value)}`")
    return value


def _params(body: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    params = body.get("params", {})
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise _bad(f"{where}: `params` must be an object, got `{_show(params)}`")
    return params


def _unknown(body: Mapping[str, Any], keys: Sequence[str], where: str) -> None:
    for key in body:
        if key not in keys:
            raise _bad(f"unknown key `{key}` in {where} (expected one of {', '.join(keys)})")


def _history_step(item: Any, i: int) -> HistoryStep:
    where = f"`session.history[{i}]`"
    if not isinstance(item, Mapping):
        raise _bad(f"{where} must be an object, got `{_show(item)}`")
    _unknown(item, _HISTORY_KEYS, where)
    decision = item.get("decision", "allow")
    if decision not in DECISIONS:
        raise _bad(f"{where}: `decision` must be one of {', '.join(DECISIONS)}, got `{_show(decision)}`")
    trusted = item.get("trusted")
    if trusted is not None and not isinstance(trusted, bool):
        raise _bad(f"{where}: `trusted` must be true or false, got `{_show(trusted)}`")
    return HistoryStep(
        adapter=_name(item, "adapter", where),
        action=_name(item, "action", where),
        params=_params(item, where),
        output=item.get("output"),
        decision=decision,
        trusted=trusted,
    )


def step_of(body: Any) -> Step:
    """Validate a step body (see the module docstring) into a `Step`."""
    if not isinstance(body, Mapping):
        raise _bad(f"a step must be a JSON object, got `{_show(body)}`")
    _unknown(body, _STEP_KEYS, "the step")
    adapter = _name(body, "adapter", "a step")
    action = _name(body, "action", "a step")
    params = _params(body, "the step")
    effect = body.get("effect")
    if effect is not None and effect not in _EFFECTS:
        raise _bad(f"`effect` must be one of {', '.join(_EFFECTS)}, got `{_show(effect)}`")
    job: dict[str, Any] = {}
    for key in ("topic", "tenant", "capability", "requester_role"):
        if key in body:
            value = body[key]
            if not isinstance(value, str):
                raise _bad(f"`{key}` must be a string, got `{_show(value)}`")
            job[key] = value
    if "approved" in body:
        if not isinstance(body["approved"], bool):
            raise _bad(f"`approved` must be true or false, got `{_show(body['approved'])}`")
        job["approved"] = body["approved"]
    session = body.get("session")
    if session is None:
        session = {}
    if not isinstance(session, Mapping):
        raise _bad(f"`session` must be an object, got `{_show(session)}`")
    _unknown(session, _SESSION_KEYS, "`session`")
    task_parts = []
    for key in ("task", "prompt"):
        value = session.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise _bad(f"`session.{key}` must be a string, got `{_show(value)}`")
        task_parts.append(value)
    history = session.get("history")
    if history is None:
        history = []
    if not isinstance(history, list):
        raise _bad(f"`session.history` must be a list, got `{_show(history)}`")
    return Step(
        adapter=adapter,
        action=action,
        params=params,
        effect=effect,
        job=job,
        task="\n".join(task_parts),
        history=tuple(_history_step(item, i) for i, item in enumerate(history)),
    )


def detector_scan(text: str) -> list[str]:
    """The names of the output detectors that fire on `text` (`detections_of`'s scan)."""
    return [d.name for d in ALL_DETECTORS if d.spans(text)]


def _labels(classifier: Classifier, params: Mapping[str, Any]) -> dict[str, str]:
    strings = [s for s in strings_in(params) if s]
    if not strings:
        found = classifier.classify("")
    else:
        found = classifier.classify(strings[0], attachments_text=strings[1:])
    return canon_labels(dict(found.labels))


def catalog_of(policy: Policy | None) -> Catalog:
    return policy.catalog if policy is not None else EMPTY_CATALOG


def param_problem(catalog: Catalog, adapter: str, action: str, params: Any) -> str | None:
    """Why `params` break the catalog's schema for `adapter:action` (the deny reason of rule
    `param_schema`), or None. An action missing from a listing adapter raises `NotFound`
    (`unknown_action`)."""
    found = catalog.lookup(adapter, action)
    if found.unknown:
        raise NotFound(
            f"adapter `{adapter}` has no action `{action}` in the catalog",
            code="unknown_action",
            details={"adapter": adapter, "action": action},
        )
    error = found.action.validate(params) if found.action is not None else None
    if error is None:
        return None
    return f"params of `{target_of(adapter, action)}` do not match its schema: {error}"


def pre_policy(policy: Policy | None, step: Step) -> Decision | None:
    """The catalog's deny of `step` before the policy (rule `param_schema`), or None; raises
    `NotFound` (`unknown_action`) as `param_problem` does. What the offline tools run where the
    server's gate runs its checks."""
    why = param_problem(catalog_of(policy), step.adapter, step.action, step.params)
    return None if why is None else Decision(DENY, PARAM_SCHEMA_RULE, why)


def step_context(
    policy: Policy | None,
    step: Step,
    *,
    scan: Callable[[str], Iterable[str]] = detector_scan,
    provenance: Provenance | None = None,
    classifier: Classifier | None = None,
    lean: bool = False,
    facts: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The context a step rule reads for `step` (see the module docstring). Pure.

    `facts`, when given, is `session_facts(step.history, <the policy's catalog>)`, computed once
    by a caller that judges many steps on the same history.

    `provenance`, when given, is the session's kept provenance (the server's, with its bound);
    otherwise it is built from the step's task and history. `classifier` defaults to the
    policy's (the server passes the kernel's, which it has with no bundle loaded too).

    `lean` (the server's hot path) leaves out what no rule of `policy` reads: the detectors'
    findings and the classifier's labels are most of a step's cost, and a bundle that never
    names `detected`, `detects` or `labels.*` cannot tell them apart from absent. The offline
    tools build the whole context, to show it.
    """
    if classifier is None:
        if policy is None:
            raise ValueError("step_context needs a policy or a classifier")
        classifier = policy.classifier
    catalog = catalog_of(policy)
    if facts is None:
        facts = session_facts(step.history, catalog)
    if provenance is None:
        provenance = Provenance.start(trusted=[step.task] if step.task else [])
        for h in step.history:
            if _untrusted(catalog, h):
                provenance = provenance.with_untrusted(h.output)
    reads = policy.fields if lean and policy is not None else None
    wants_detections = reads is None or "detected" in reads or "detections" in reads
    wants_labels = reads is None or any(f.startswith("labels.") for f in reads)
    found = detections_of(step.params, scan) if wants_detections else {}
    ctx: dict[str, Any] = {
        "target": step.target,
        "adapter": step.adapter,
        "action": step.action,
        "params": dict(step.params),
        "labels": _labels(classifier, step.params) if wants_labels else {},
        "detections": found,
        "detected": detected(found),
        "tenant": step.job.get("tenant", "default"),
        "requester_role": step.job.get("requester_role", "agent"),
        "session": dict(facts),
        "provenance": provenance,
    }
    effect = catalog.lookup(step.adapter, step.action).effect or step.effect
    if effect is not None:
        ctx["effect"] = effect
    for key in ("topic", "capability", "approved"):
        if key in step.job:
            ctx[key] = step.job[key]
    return ctx


def session_facts(history: Sequence[HistoryStep], catalog: Catalog) -> dict[str, Any]:
    """What rules read of a session's history (`session.*` in the context). Depends on the
    catalog too: an earlier step's output is untrusted unless its step or its action says so."""
    allowed = [h for h in history if h.decision == "allow"]
    return {
        "untrusted_read": any(_untrusted(catalog, h) for h in allowed),
        "step_count": len(history),
        "denied_count": sum(1 for h in history if h.decision == "deny"),
        "allowed_targets": [h.target for h in allowed],
    }


def advance_facts(
    facts: Mapping[str, Any], catalog: Catalog, before: HistoryStep | None, after: HistoryStep
) -> dict[str, Any] | None:
    """`session_facts` of a history once its item `before` became `after` (`before` None: `after`
    is a new step, appended), from the facts of the history before; None when that needs the
    whole history again (a decision changed, or an untrusted output went away). Pure: a session
    of n steps then costs O(1) per step here rather than O(n)."""
    if before is None:
        new = dict(facts)
        new["step_count"] += 1
        if after.decision == "deny":
            new["denied_count"] += 1
        elif after.decision == "allow":
            new["allowed_targets"] = [*facts["allowed_targets"], after.target]
            new["untrusted_read"] = facts["untrusted_read"] or _untrusted(catalog, after)
        return new
    if before.decision != after.decision or before.target != after.target:
        return None
    was, now = _untrusted(catalog, before), _untrusted(catalog, after)
    if was == now or (now and facts["untrusted_read"]):
        return dict(facts)
    if now:
        return {**facts, "untrusted_read": True}
    return None  # it was untrusted and is not any more: another step may still be


def _untrusted(catalog: Catalog, h: HistoryStep) -> bool:
    """An allowed earlier step whose (reported) output is untrusted."""
    return h.decision == "allow" and h.output is not None and not _trusted(catalog, h)


def _trusted(catalog: Catalog, h: HistoryStep) -> bool:
    if h.trusted is not None:
        return h.trusted
    return catalog.lookup(h.adapter, h.action).trusted

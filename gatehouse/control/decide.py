"""The one decision pipeline: containment -> the caller's scope -> the kernel.

Every gate that judges a request (submit, simulate and explain, dispatch; the step gate next)
asks this pipeline, so the enforcement order of DESIGN.md sections 1 and 9 is written once:

1. **containment** — a kill switch on the tenant, the identity or (for a step) the adapter
   denies before anything else (rule `incident_containment`), whatever the policy would say;
2. **checks** — the caller's least-privilege scope, as a sequence of `Check`s the gate supplies
   (for a job: its topic and capability, `job_scope`; for a step: the identity's adapter scope,
   then the catalog's parameter schema). They run before the policy, so a caller outside its
   scope learns nothing of what the policy would ask or answer;
3. **the kernel** — the policy decision on the request context, with its cache and fail mode.

The first step that denies answers; later steps do not run. A gate that needs to act between
steps (the dispatch gate checks an approval token after containment) asks `contained` first and
`judge` after, which checks containment again: cheap, and right after the awaits in between.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from gatehouse.control.incidents import RULE_ID, Incidents
from gatehouse.control.shadow import ShadowPolicy
from gatehouse.domain.identity import Identity
from gatehouse.domain.records import Verdict
from gatehouse.kernel import Kernel
from gatehouse.metrics import Metrics
from gatehouse.policy import DENY, Decision

__all__ = ["SCOPE_RULE", "Check", "DecisionPipeline", "job_scope"]

SCOPE_RULE = "identity_scope"


@dataclass(frozen=True, slots=True)
class Check:
    """A check before the policy: `run` answers why it denies, or None when it passes."""

    # The rule id its deny carries, and its key in an explanation ("ok" or "denied").
    name: str
    run: Callable[[], str | None]


def _job_scope_problem(who: Identity, topic: str, capability: str | None) -> str | None:
    if not who.may_use_topic(topic):
        return f"topic `{topic}` is outside the scope of identity `{who.name}`"
    if not who.may_use_capability(capability):
        if capability is None:
            return (
                f"identity `{who.name}` is scoped to capabilities "
                f"({', '.join(who.capabilities)}): the job must name the one it uses in `meta.capability`"
            )
        return f"capability `{capability}` is outside the scope of identity `{who.name}`"
    return None


def job_scope(who: Identity, topic: str, capability: str | None) -> Check:
    """The identity's least-privilege scope over a job: its topic globs and capabilities."""
    return Check(SCOPE_RULE, partial(_job_scope_problem, who, topic, capability))


class DecisionPipeline:
    def __init__(
        self, *, kernel: Kernel, incidents: Incidents, metrics: Metrics, shadow: ShadowPolicy | None = None
    ) -> None:
        self.kernel = kernel
        self.incidents = incidents
        self.metrics = metrics
        # A candidate bundle judged beside the live one, never enforced (`control.shadow`).
        self.shadow = shadow

    def contained(
        self, tenant: str, identity_id: str | None, stage: str, adapter: str | None = None
    ) -> Verdict | None:
        """Step 1 alone: the deny of a containment holding `tenant`, `identity_id` or `adapter`."""
        c = self.incidents.check(tenant, identity_id, adapter)
        if c is None:
            return None
        return self.incidents.verdict(c, self.kernel.snapshot, stage)

    def _checked(self, checks: Sequence[Check], stage: str) -> Verdict | None:
        for check in checks:
            why = check.run()
            if why is not None:
                self.metrics.decision(stage, DENY, check.name)
                return Verdict(decision=Decision(DENY, check.name, why), snapshot=self.kernel.snapshot)
        return None

    async def judge(
        self,
        *,
        tenant: str,
        identity_id: str | None,
        ctx: Mapping[str, Any],
        stage: str,
        checks: Sequence[Check] = (),
        adapter: str | None = None,
    ) -> Verdict:
        """The verdict on a request of `identity_id` in `tenant` whose policy context is `ctx`
        (a step names its `adapter`, which a containment may hold)."""
        verdict = self.contained(tenant, identity_id, stage, adapter) or self._checked(checks, stage)
        if verdict is not None:
            return verdict
        verdict = await self.kernel.decide(ctx, stage=stage)
        shadow = self.shadow
        if shadow is not None and shadow.current is not None:
            # After the live decision is made, on the same context object; never awaited.
            verdict = shadow.observe(ctx, verdict, stage=stage, tenant=tenant)
        return verdict

    async def explain(
        self,
        *,
        tenant: str,
        identity_id: str | None,
        ctx: Mapping[str, Any],
        checks: Sequence[Check] = (),
    ) -> dict[str, Any]:
        """The policy's per-rule trace, with the steps before it: each check's outcome under its
        name, and the decision of the first step that denies in place of the policy's."""
        out = self.kernel.explain(ctx)
        if out is None:
            verdict = await self.kernel.decide(ctx, stage="explain")
            out = {
                "decision": verdict.decision.to_dict(),
                "winner": verdict.decision.rule_id,
                "why": f"kernel unavailable: {verdict.unavailable}",
                "rules": [],
                "policy_snapshot": None,
            }
        denied: tuple[str, str] | None = None
        for check in checks:
            why = check.run()
            out[check.name] = "ok" if why is None else "denied"
            if why is not None and denied is None:
                denied = (check.name, why)
        c = self.incidents.check(tenant, identity_id)
        out["containment"] = "ok" if c is None else "contained"
        if c is not None:
            denied = (RULE_ID, self.incidents.why(c))
        if denied is not None:
            name, why = denied
            out["decision"] = Decision(DENY, name, why).to_dict()
            out["winner"] = name
            out["why"] = why + " (checked before policy)"
        return out

"""The safety kernel: the running policy, and the fail mode when it cannot decide.

Both gates ask `Kernel.decide`. If there is no bundle, or evaluation raises, the fail mode of the
topic decides: `closed` (the default) denies with reason `kernel_unavailable`; `open` allows,
marks the verdict `fail_mode_applied` and counts it in `gatehouse_input_fail_open_total`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from gatehouse.domain.records import Verdict
from gatehouse.ingress import DEFAULT_CLASSIFIER, Classifier
from gatehouse.kernel.cache import DecisionCache
from gatehouse.metrics import Metrics
from gatehouse.output import OutputVerdict, applies
from gatehouse.output import decide as decide_output
from gatehouse.policy import ALLOW, DENY, Decision, Policy

__all__ = ["KERNEL_UNAVAILABLE", "Kernel", "Verdict"]

log = logging.getLogger("gatehouse.kernel")
KERNEL_UNAVAILABLE = "kernel_unavailable"


class Kernel:
    def __init__(
        self,
        *,
        metrics: Metrics,
        default_fail_mode: str = "closed",
        cache: DecisionCache | None = None,
    ) -> None:
        self.metrics = metrics
        self.default_fail_mode = default_fail_mode
        self._policy: Policy | None = None
        self.cache = cache if cache is not None else DecisionCache(on_event=metrics.cache_event)

    @property
    def policy(self) -> Policy | None:
        return self._policy

    @property
    def snapshot(self) -> str | None:
        return self._policy.snapshot if self._policy is not None else None

    # What the services ask of the running bundle besides a decision. They ask the kernel, never
    # `kernel.policy`, so that a swap between two reads of one request cannot mix two bundles
    # and a kernel in another process can answer the same questions.

    @property
    def classifier(self) -> Classifier:
        """The ingress classifier: the default table extended by the bundle's `classifiers`."""
        policy = self._policy
        return DEFAULT_CLASSIFIER if policy is None else policy.classifier

    def missing_fields(self, topic: str, job: Mapping[str, Any]) -> list[str]:
        """The fields the bundle's `require:` asks of jobs on `topic` that `job` lacks."""
        policy = self._policy
        return [] if policy is None else policy.missing_fields(topic, job)

    def explain(self, ctx: Mapping[str, Any]) -> dict[str, Any] | None:
        """The per-rule trace for `ctx`, or None with no bundle loaded."""
        policy = self._policy
        return None if policy is None else policy.explain(ctx).to_dict()

    def judge_output(
        self, output: Any, *, topic: str | None, target: str | None = None, error: str | None = None
    ) -> OutputVerdict | None:
        """The output rules' verdict on the result (output and error) of a job on `topic` or of a
        tool call on `target`; None with no bundle."""
        policy = self._policy
        if policy is None:
            return None
        return decide_output(output, policy.output_rules, topic=topic, target=target, error=error)

    def output_rules_apply(self, topic: str | None, target: str | None = None) -> bool:
        """Whether any output rule judges the outputs of jobs on `topic` (or calls on `target`)."""
        policy = self._policy
        return policy is not None and any(applies(r, topic, target) for r in policy.output_rules)

    def install(self, policy: Policy | None) -> None:
        # Clear first, then swap: no lookup after the swap can see an entry of the old snapshot
        # (entries are keyed on the snapshot as well, so this is belt and braces).
        self.cache.clear()
        self._policy = policy
        self.metrics.set_snapshot(policy.snapshot if policy else None, policy.name if policy else None)

    def fail_mode_for(self, topic: str | None) -> str:
        policy = self._policy
        return policy.fail_mode_for(topic) if policy is not None else self.default_fail_mode

    async def probe(self) -> str | None:
        """Why the kernel cannot decide right now, or None. In process it always can (a missing
        bundle is reported apart); a kernel in another process is pinged."""
        return None

    async def decide(self, ctx: Mapping[str, Any], *, stage: str) -> Verdict:
        """The verdict for `ctx`. Async so that a kernel in another process fits the same call."""
        return self.decide_now(ctx, stage=stage)

    def decide_now(self, ctx: Mapping[str, Any], *, stage: str) -> Verdict:
        policy = self._policy
        if policy is None:
            return self._unavailable(ctx, stage, "no policy bundle is loaded")
        started = time.perf_counter()
        try:
            key = self.cache.key(policy, ctx)
            decision = self.cache.get(key)
            cached = decision is not None
            if decision is None:
                decision = policy.decide(ctx)
                self.cache.put(key, decision)
        except Exception as exc:  # any evaluation failure falls to the fail mode, never through
            log.exception("policy evaluation failed")
            return self._unavailable(ctx, stage, f"evaluation failed: {exc}")
        self.metrics.eval_seconds.observe(time.perf_counter() - started)
        self.metrics.decision(stage, decision.decision, decision.rule_id)
        return Verdict(decision=decision, snapshot=policy.snapshot, cached=cached)

    def _unavailable(self, ctx: Mapping[str, Any], stage: str, why: str) -> Verdict:
        topic = ctx.get("topic")
        mode = self.fail_mode_for(topic if isinstance(topic, str) else None)
        self.metrics.kernel_unavailable.labels(stage).inc()
        if mode == "open":
            self.metrics.fail_open.labels(stage).inc()
            decision = Decision(ALLOW, "fail_open", f"kernel unavailable ({why}); fail mode is open")
        else:
            decision = Decision(DENY, KERNEL_UNAVAILABLE, KERNEL_UNAVAILABLE)
        self.metrics.decision(stage, decision.decision, decision.rule_id)
        return Verdict(
            decision=decision,
            snapshot=self.snapshot,
            fail_mode_applied=True,
            unavailable=why,
        )

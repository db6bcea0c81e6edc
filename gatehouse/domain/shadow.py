"""Shadow bundles: a candidate policy judged beside the live one, never enforced.

A `Disagreement` is one decision on which the two bundles differ: the live decision (what was
enforced, under its decision id in the decision log) and what the shadow bundle would have
answered on the same request context. Only a different *decision* counts (allow, deny,
require_approval); the same decision under another rule is no disagreement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gatehouse.domain.ids import rfc3339

__all__ = ["Disagreement"]


@dataclass(frozen=True, slots=True)
class Disagreement:
    decision_id: str
    timestamp: float
    stage: str  # submit | dispatch | step
    tenant: str | None
    # What was judged: a job's topic, a step's target.
    subject: str | None
    live_snapshot: str | None
    live_decision: str
    live_rule_id: str
    shadow_snapshot: str
    shadow_decision: str
    shadow_rule_id: str
    shadow_reason: str

    def to_public(self) -> dict[str, Any]:
        return {
            "decision_id": self.decision_id,
            "timestamp": rfc3339(self.timestamp),
            "stage": self.stage,
            "tenant": self.tenant,
            "subject": self.subject,
            "live": {
                "decision": self.live_decision,
                "rule_id": self.live_rule_id,
                "policy_snapshot": self.live_snapshot,
            },
            "shadow": {
                "decision": self.shadow_decision,
                "rule_id": self.shadow_rule_id,
                "reason": self.shadow_reason,
                "policy_snapshot": self.shadow_snapshot,
            },
        }

"""Incident signals: the recent rate of each thing that goes up during an incident (denials,
forged approvals, egress denials, quarantines, step denials, fail-open), against a baseline.

Prometheus counters only ever grow, and a rate needs two readings in time. The server samples
the counter totals every few seconds into a bounded history, and `status` compares the count of
the last `window` with the count of the `baseline` before it — what `GatehouseDenySpike` does
in Prometheus, but answerable by an on-call engineer with one command and no Prometheus.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from gatehouse.metrics import Metrics

__all__ = ["SIGNALS", "Signal", "SignalHistory"]


@dataclass(frozen=True, slots=True)
class Signal:
    name: str
    metric: str
    labels: tuple[tuple[str, str], ...]  # the samples counted must carry these label values
    min_count: int  # fewer events in the window never flag (one deny is not an incident)
    summary: str


SIGNALS: tuple[Signal, ...] = (
    Signal("deny", "gatehouse_decisions_total", (("decision", "deny"),), 5, "policy denials (all stages)"),
    Signal("step_deny", "gatehouse_step_decisions_total", (("decision", "deny"),), 5, "denied tool calls"),
    Signal("forged_approval", "gatehouse_approval_forgery_total", (), 1, "forged approval callbacks/tokens"),
    Signal("egress_denied", "gatehouse_egress_denied_total", (), 1, "outbound calls off the egress list"),
    Signal(
        "quarantine", "gatehouse_jobs_finished_total", (("state", "quarantined"),), 5, "quarantined outputs"
    ),
    Signal("fail_open", "gatehouse_input_fail_open_total", (), 1, "allowed without a policy decision"),
)

# A day and a bit of history at one sample each SAMPLE_SECONDS: the longest baseline accepted.
SAMPLE_SECONDS = 10.0
MAX_SPAN_SECONDS = 25 * 3600.0


def totals(metrics: Metrics) -> dict[str, float]:
    """The current total of each signal's counter (summed over the samples that match)."""
    out = {s.name: 0.0 for s in SIGNALS}
    for family in metrics.registry.collect():
        for sample in family.samples:
            for s in SIGNALS:
                if sample.name == s.metric and all(sample.labels.get(k) == v for k, v in s.labels):
                    out[s.name] += sample.value
    return out


class SignalHistory:
    """Timestamped totals of the signal counters; the first reading is the zeros of a new
    process (counters start at zero when the server does)."""

    def __init__(self, metrics: Metrics, *, now: float | None = None) -> None:
        self._metrics = metrics
        self.started = time.time() if now is None else now
        self._samples: deque[tuple[float, dict[str, float]]] = deque()
        self._samples.append((self.started, {s.name: 0.0 for s in SIGNALS}))

    def sample(self, now: float | None = None) -> dict[str, float]:
        ts = time.time() if now is None else now
        current = totals(self._metrics)
        self._samples.append((ts, current))
        # Keep the oldest sample that still precedes the span, so `at()` can read its edge.
        while len(self._samples) > 2 and self._samples[1][0] < ts - MAX_SPAN_SECONDS:
            self._samples.popleft()
        return current

    def at(self, ts: float) -> dict[str, float]:
        """The totals as they were at `ts`: the last reading at or before it (zeros before start)."""
        found = {s.name: 0.0 for s in SIGNALS}
        for sample_ts, values in self._samples:
            if sample_ts > ts:
                break
            found = values
        return found

    def status(
        self, window: float, baseline: float, threshold: float, now: float | None = None
    ) -> dict[str, Any]:
        """Each signal's count in the last `window` seconds and in the `baseline` seconds before,
        as rates per minute, their ratio, and whether it is flagged: at least the signal's
        `min_count` events and a rate at least `threshold` times the baseline's (any rate when
        the baseline saw none)."""
        ts = time.time() if now is None else now
        current = self.sample(ts)
        start = self.at(ts - window)
        # A server younger than window + baseline has a shorter baseline: its whole life before
        # the window (none at all when it is younger than the window).
        base_span = max(0.0, min(baseline, ts - window - self.started))
        base_start = self.at(ts - window - base_span)
        signals = []
        for s in SIGNALS:
            recent = current[s.name] - start[s.name]
            before = start[s.name] - base_start[s.name]
            recent_rate = recent * 60.0 / window
            base_rate = before * 60.0 / base_span if base_span > 0 else 0.0
            ratio = recent_rate / base_rate if base_rate > 0 else None
            flagged = recent >= s.min_count and (ratio is None or ratio >= threshold)
            signals.append(
                {
                    "signal": s.name,
                    "metric": s.metric,
                    "summary": s.summary,
                    "recent": int(recent),
                    "recent_per_min": round(recent_rate, 3),
                    "baseline": int(before),
                    "baseline_per_min": round(base_rate, 3),
                    "ratio": None if ratio is None else round(ratio, 2),
                    "min_count": s.min_count,
                    "flagged": flagged,
                }
            )
        return {
            "window_seconds": int(window),
            "baseline_seconds": int(base_span),
            "threshold": threshold,
            "signals": signals,
            "flagged": [x["signal"] for x in signals if x["flagged"]],
        }

"""Prometheus metrics, one registry per server (so tests can run several in one process)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["Metrics"]

# Rule ids become label values; past this many distinct ids, the rest share `other` so that a
# 10,000-rule bundle cannot explode the series count.
MAX_RULE_LABELS = 100


class _QueueCollector(Collector):
    def __init__(
        self, counts: Callable[[], dict[str, int]], oldest_pending: Callable[[], float | None]
    ) -> None:
        self._counts = counts
        self._oldest_pending = oldest_pending

    def collect(self):  # type: ignore[no-untyped-def]
        family = GaugeMetricFamily("gatehouse_job_queue_depth", "Jobs by state", labels=["state"])
        try:
            counts, oldest = self._counts(), self._oldest_pending()
        except Exception:  # a scrape must never take the server down
            counts, oldest = {}, None
        for state, n in sorted(counts.items()):
            family.add_metric([state], n)
        yield family
        yield GaugeMetricFamily(
            "gatehouse_approvals_pending",
            "Jobs waiting for a human approval",
            value=counts.get("pending_approval", 0),
        )
        yield GaugeMetricFamily(
            "gatehouse_approval_oldest_pending_seconds",
            "Age of the longest-waiting approval request",
            value=time.time() - oldest if oldest else 0.0,
        )


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self._rules: set[str] = set()
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self.decisions = Counter(
            "gatehouse_decisions_total",
            "Policy decisions by stage, decision and rule",
            ["stage", "decision", "rule"],
            registry=r,
        )
        self.eval_seconds = Histogram(
            "gatehouse_policy_eval_seconds",
            "Time to decide one request in the kernel",
            buckets=(1e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 1e-3, 5e-3, 0.05),
            registry=r,
        )
        self.fail_open = Counter(
            "gatehouse_input_fail_open_total",
            "Requests allowed because the kernel could not decide and the fail mode is open",
            ["stage"],
            registry=r,
        )
        self.kernel_unavailable = Counter(
            "gatehouse_kernel_unavailable_total",
            "Times the kernel could not decide",
            ["stage"],
            registry=r,
        )
        self.jobs_submitted = Counter(
            "gatehouse_jobs_submitted_total",
            "Jobs submitted, by submit decision",
            ["decision"],
            registry=r,
        )
        self.jobs_finished = Counter(
            "gatehouse_jobs_finished_total",
            "Jobs that reached a final state",
            ["state"],
            registry=r,
        )
        self.output_decisions = Counter(
            "gatehouse_output_decisions_total",
            "Output gate verdicts on worker results (and reviewer releases/discards)",
            ["decision"],
            registry=r,
        )
        self.step_decisions = Counter(
            "gatehouse_step_decisions_total",
            "Step gate decisions on proposed tool calls, by decision and rule",
            ["decision", "rule"],
            registry=r,
        )
        self.step_seconds = Histogram(
            "gatehouse_step_eval_seconds",
            "Time to decide one proposed tool call in the step gate, store write included",
            buckets=(1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.5),
            registry=r,
        )
        self.rate_limited = Counter(
            "gatehouse_rate_limited_total",
            "Requests refused by a rate limit",
            ["scope"],
            registry=r,
        )
        self.approval_events = Counter(
            "gatehouse_approval_events_total",
            "Approval events (requested, approved, rejected, expired, stale, forged)",
            ["event"],
            registry=r,
        )
        self.approval_forgery = Counter(
            "gatehouse_approval_forgery_total",
            "Approval callbacks or tokens refused as forged or meant for another job",
            registry=r,
        )
        self.approval_seconds = Histogram(
            "gatehouse_approval_decision_seconds",
            "Time from an approval request to a person's decision",
            buckets=(10, 30, 60, 300, 900, 1800, 3600, 14400, 86400),
            registry=r,
        )
        self.http_errors = Counter(
            "gatehouse_http_errors_total", "Error responses by code", ["code"], registry=r
        )
        self.cache_events = Counter(
            "gatehouse_decision_cache_total",
            "Decision cache lookups and evictions (event: hit, miss, eviction)",
            ["event"],
            registry=r,
        )
        self.bundle_refused = Counter(
            "gatehouse_policy_bundle_refused_total",
            "Policy bundles the kernel refused, by reason",
            ["reason"],
            registry=r,
        )
        self.shadow_disagreements = Counter(
            "gatehouse_shadow_disagreements_total",
            "Decisions on which the shadow bundle disagreed with the live one (never enforced)",
            ["live", "shadow"],
            registry=r,
        )
        self.lkg_fallback = Counter(
            "gatehouse_policy_last_known_good_total",
            "Starts or reloads that fell back to the last-known-good bundle",
            registry=r,
        )
        self.containments_active = Gauge(
            "gatehouse_containments_active",
            "Incident containments in force (tenants and identities)",
            registry=r,
        )
        self.adapter_calls = Counter(
            "gatehouse_adapter_calls_total",
            "Calls the broker made for allowed steps, by adapter and outcome "
            "(succeeded, failed, or the error code)",
            ["adapter", "status"],
            registry=r,
        )
        self.adapter_call_seconds = Histogram(
            "gatehouse_adapter_call_seconds",
            "Time of the broker's outbound call (egress checks, connect, redirects, body), by adapter",
            ["adapter"],
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=r,
        )
        self.egress_denied = Counter(
            "gatehouse_egress_denied_total",
            "Outbound calls of the broker refused by an adapter's egress list, by adapter",
            ["adapter"],
            registry=r,
        )
        self.credentials_issued = Counter(
            "gatehouse_credentials_issued_total",
            "Credentials the broker minted for an execution, by adapter",
            ["adapter"],
            registry=r,
        )
        self.credentials_revoked = Counter(
            "gatehouse_credentials_revoked_total",
            "Minted credentials revoked before they expired",
            registry=r,
        )
        self.snapshot_info = Gauge(
            "gatehouse_policy_snapshot_info",
            "The running policy snapshot (value 1)",
            ["snapshot", "name"],
            registry=r,
        )

    def _child(self, metric: Any, *labels: str) -> Any:
        # `.labels()` costs microseconds per call; the hot path reuses the bound child.
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def approval_event(self, event: str) -> None:
        self.approval_events.labels(event).inc()

    def cache_event(self, event: str) -> None:
        self._child(self.cache_events, event).inc()

    def watch_queue(
        self, counts: Callable[[], dict[str, int]], oldest_pending: Callable[[], float | None]
    ) -> None:
        """Report job counts by state and the age of the oldest pending approval (a timestamp)."""
        self.registry.register(_QueueCollector(counts, oldest_pending))

    def rule_label(self, rule_id: str) -> str:
        if rule_id in self._rules:
            return rule_id
        if len(self._rules) < MAX_RULE_LABELS:
            self._rules.add(rule_id)
            return rule_id
        return "other"

    def decision(self, stage: str, decision: str, rule_id: str) -> None:
        self._child(self.decisions, stage, decision, self.rule_label(rule_id)).inc()

    def step_decision(self, decision: str, rule_id: str) -> None:
        self._child(self.step_decisions, decision, self.rule_label(rule_id)).inc()

    def set_snapshot(self, snapshot: str | None, name: str | None) -> None:
        self.snapshot_info.clear()
        if snapshot:
            self.snapshot_info.labels(snapshot, name or "").set(1)

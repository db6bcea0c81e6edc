"""The shipped alert rules are valid PromQL over the metrics the server exports.

`examples/prometheus/alerts.yml` is read with YAML and each `expr` is tokenised: brackets must
nest, every function must be a PromQL function, every range vector must sit inside a function
that takes one, every metric must be a series `gatehouse.metrics.Metrics` exports, every label
matcher must name a label of its metric (with a value the server can emit, where the values are
a closed set), and an annotation may only template a label the expression keeps. `promtool`,
when installed, checks the file as Prometheus would; without it that test is reported skipped.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

import httpx
import pytest
import yaml
from harness import ROOT, Server
from prometheus_client.metrics import MetricWrapperBase

from gatehouse.domain.states import STATES
from gatehouse.metrics import Metrics
from gatehouse.policy.model import DECISIONS, OUTPUT_DECISIONS

ALERTS = ROOT / "examples" / "prometheus" / "alerts.yml"
REQUIRED = {
    "GatehouseDenySpike",
    "GatehouseQuarantineSpike",
    "GatehouseFailOpen",
    "GatehouseKernelUnavailable",
    "GatehouseBundleRefused",
    "GatehouseApprovalQueueAge",
    "GatehouseEgressDenied",
    "GatehouseApprovalForgery",
}

# PromQL functions and aggregations the rules may call, and which of them take a range vector.
RANGE_FUNCTIONS = {"rate", "irate", "increase", "delta", "idelta", "deriv", "changes", "resets"} | {
    f"{agg}_over_time" for agg in ("avg", "min", "max", "sum", "count", "last", "quantile", "stddev")
}
FUNCTIONS = RANGE_FUNCTIONS | {
    "abs", "absent", "ceil", "clamp_max", "clamp_min", "floor", "histogram_quantile", "label_replace",
    "round", "scalar", "sort", "time", "timestamp", "vector",
}  # fmt: skip
AGGREGATIONS = {"sum", "min", "max", "avg", "count", "stddev", "topk", "bottomk", "quantile", "group"}
KEYWORDS = {
    "by",
    "without",
    "and",
    "or",
    "unless",
    "offset",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
}
DURATION = re.compile(r"(?:\d+(?:ms|[smhdwy]))+")
# Label values the server can emit, where they are a closed set.
LABEL_VALUES = {"decision": {*DECISIONS, *OUTPUT_DECISIONS}, "state": set(STATES)}

_TOKEN = re.compile(
    r"""\s*(?:(?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(?P<duration>\[[^\]]*\])"""
    r"""|(?P<offset>(?:\d+(?:ms|[smhdwy]))+)(?![A-Za-z0-9_])"""
    r"""|(?P<number>\d+(?:\.\d+)?(?:e[+-]?\d+)?)(?![A-Za-z_])|(?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)"""
    r"""|(?P<op>=~|!~|!=|==|>=|<=|[-+*/%^<>=,(){}]))"""
)


def exported_series() -> dict[str, set[str]]:
    """Every series name `Metrics` exposes -> the label names it carries."""
    metrics = Metrics()
    metrics.watch_queue(lambda: {"pending_approval": 1, "queued": 2}, lambda: None)
    out: dict[str, set[str]] = {}
    for value in vars(metrics).values():
        if not isinstance(value, MetricWrapperBase):
            continue
        name, kind, labels = value._name, value._type, set(value._labelnames)
        if kind == "counter":
            out[f"{name}_total"] = labels
        elif kind == "histogram":
            out |= {f"{name}_sum": labels, f"{name}_count": labels, f"{name}_bucket": labels | {"le"}}
        else:
            out[name] = labels
    # Families of custom collectors (the queue gauges): their names and the labels of samples.
    for family in metrics.registry.collect():
        for sample in family.samples:
            out.setdefault(sample.name, set()).update(sample.labels)
    return out


def tokens(expr: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(expr.rstrip()):
        m = _TOKEN.match(expr, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"cannot read `{expr[pos : pos + 20]}`")
        kind = m.lastgroup
        assert kind is not None
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def problems(expr: str, series: dict[str, set[str]]) -> list[str]:
    """What is wrong with `expr` (empty when nothing is)."""
    try:
        toks = tokens(expr)
    except ValueError as exc:
        return [str(exc)]
    found: list[str] = []
    stack: list[tuple[str, str]] = []  # open brackets, with the function that opened a paren
    metrics_used: set[str] = set()
    kept: set[str] = set()
    for i, (kind, text) in enumerate(toks):
        prev = toks[i - 1] if i else ("", "")
        nxt = toks[i + 1] if i + 1 < len(toks) else ("", "")
        if kind == "op" and text in "({":
            owner = prev[1] if prev[0] == "ident" else ""
            stack.append((text, owner))
        elif kind == "op" and text in ")}":
            if not stack or stack.pop()[0] != {")": "(", "}": "{"}[text]:
                found.append(f"unbalanced `{text}`")
        elif kind == "duration":
            if not DURATION.fullmatch(text[1:-1]):
                found.append(f"bad range `{text}`")
            funcs = [owner for bracket, owner in stack if bracket == "("]
            if not funcs or funcs[-1] not in RANGE_FUNCTIONS:
                found.append(f"range `{text}` outside a function that takes one")
        elif kind == "ident":
            in_braces = bool(stack) and stack[-1][0] == "{"
            in_grouping = bool(stack) and stack[-1][1] in ("by", "without", "on", "ignoring")
            if in_braces:
                if nxt[0] != "op" or nxt[1] not in ("=", "!=", "=~", "!~"):
                    found.append(f"label matcher `{text}` has no operator")
                    continue
                metric = _selector_metric(toks, i)
                if metric in series and text not in series[metric]:
                    found.append(f"`{metric}` has no label `{text}`")
                value = toks[i + 2][1][1:-1] if i + 2 < len(toks) and toks[i + 2][0] == "string" else None
                if nxt[1] == "=" and text in LABEL_VALUES and value not in LABEL_VALUES[text]:
                    found.append(f"`{text}` is never `{value}`")
            elif in_grouping:
                kept.add(text)
            elif nxt == ("op", "("):
                if text not in FUNCTIONS | AGGREGATIONS | {"by", "without", "on", "ignoring"}:
                    found.append(f"unknown function `{text}`")
            elif text in KEYWORDS:
                if text == "offset" and nxt[0] != "offset":
                    found.append("`offset` without a duration")
            elif text in AGGREGATIONS and nxt[0] == "ident" and nxt[1] in ("by", "without"):
                continue
            elif text not in series:
                found.append(f"`{text}` is not a series gatehouse exports")
            else:
                metrics_used.add(text)
    if stack:
        found.append(f"unclosed `{stack[-1][0]}`")
    if not metrics_used:
        found.append("names no gatehouse metric")
    found += [f"`by ({label})` names no label of the metrics used" for label in kept
              if not any(label in series.get(m, set()) for m in metrics_used)]  # fmt: skip
    return found


def _selector_metric(toks: list[tuple[str, str]], i: int) -> str:
    """The metric name before the `{` that encloses token `i`."""
    j = i
    while j >= 0 and toks[j] != ("op", "{"):
        j -= 1
    return toks[j - 1][1] if j >= 1 and toks[j - 1][0] == "ident" else ""


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


SERIES = exported_series()


def test_alert_rules_are_well_formed() -> None:
    assert {r["alert"] for r in rules()} == REQUIRED
    for r in rules():
        assert set(r) <= {"alert", "expr", "for", "labels", "annotations"}
        assert r["expr"].count("(") == r["expr"].count(")")
        assert r["labels"]["severity"] in {"warning", "critical"}
        assert r["annotations"]["summary"]
        if "for" in r:
            assert DURATION.fullmatch(r["for"]), r["for"]


@pytest.mark.parametrize("rule", rules(), ids=lambda r: r["alert"])
def test_every_expression_is_promql_over_exported_series(rule: dict[str, Any]) -> None:
    assert problems(rule["expr"], SERIES) == []


@pytest.mark.parametrize("rule", rules(), ids=lambda r: r["alert"])
def test_annotations_template_only_labels_the_expression_keeps(rule: dict[str, Any]) -> None:
    templated = set(re.findall(r"\$labels\.([A-Za-z_][A-Za-z0-9_]*)", " ".join(rule["annotations"].values())))
    kept = {text for kind, text in tokens(rule["expr"]) if kind == "ident"}
    assert templated <= kept, f"{rule['alert']} templates labels its expression aggregates away"


@pytest.mark.parametrize(
    ("expr", "fragment"),
    [
        ("sum(rate(gatehouse_decisions_totl[5m])) > 1", "is not a series"),
        ('sum(rate(gatehouse_decisions_total{verdict="deny"}[5m]))', "has no label `verdict`"),
        ('sum(rate(gatehouse_decisions_total{decision="denied"}[5m]))', "is never `denied`"),
        ('sum(increase(gatehouse_jobs_finished_total{state="quarantine"}[5m]))', "is never `quarantine`"),
        ("sum(rate(gatehouse_decisions_total[5m])", "unclosed `(`"),
        ("sum(rate(gatehouse_decisions_total[5m])))", "unbalanced `)`"),
        ("sum(rate(gatehouse_decisions_total[5m)))", "cannot read"),
        ("sum(gatehouse_decisions_total[5m])", "outside a function"),
        ("sum(rate(gatehouse_decisions_total[5 minutes]))", "bad range"),
        ("summ(rate(gatehouse_decisions_total[5m]))", "unknown function `summ`"),
        ("sum by (tenant) (rate(gatehouse_decisions_total[5m]))", "`by (tenant)`"),
        ("max(gatehouse_approval_oldest_pending_second) > 1", "is not a series"),
        ("1 > 0", "names no gatehouse metric"),
        ("sum(rate(gatehouse_decisions_total[5m] offset))", "`offset` without a duration"),
    ],
)
def test_the_checker_finds_what_is_wrong(expr: str, fragment: str) -> None:
    # Guard the guard: a checker that accepted everything would make the tests above meaningless.
    assert any(fragment in p for p in problems(expr, SERIES)), problems(expr, SERIES)


def test_the_exported_series_include_what_the_alerts_need() -> None:
    for needed in (
        "gatehouse_decisions_total",
        "gatehouse_policy_eval_seconds_bucket",
        "gatehouse_input_fail_open_total",
        "gatehouse_kernel_unavailable_total",
        "gatehouse_policy_bundle_refused_total",
        "gatehouse_jobs_finished_total",
        "gatehouse_approval_oldest_pending_seconds",
        "gatehouse_job_queue_depth",
        "gatehouse_approvals_pending",
        "gatehouse_egress_denied_total",
        "gatehouse_approval_forgery_total",
    ):
        assert needed in SERIES, needed
    assert SERIES["gatehouse_decisions_total"] == {"stage", "decision", "rule"}


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_rules() -> None:
    out = subprocess.run(["promtool", "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_alerts_use_only_exported_metric_names(server: Server) -> None:
    with server.admin() as c:  # make sure the labelled counters have at least one series
        c.post("/api/v1/jobs", json={"topic": "job.exec.shell", "prompt": "rm -rf /"})
    exported = set()
    for line in httpx.get(server.metrics_url).text.splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            exported.add(name)
            if kind == "counter":
                exported.add(name + "_total" if not name.endswith("_total") else name)
            if kind == "histogram":
                exported |= {name + "_bucket", name + "_sum", name + "_count"}
    used = set(re.findall(r"\b(gatehouse_[a-z_]+)", ALERTS.read_text()))
    assert used, "the alert file names no gatehouse metric"
    assert used <= exported, f"not exported: {sorted(used - exported)}"
    for needed in (
        "gatehouse_decisions_total",
        "gatehouse_policy_eval_seconds",
        "gatehouse_input_fail_open_total",
        "gatehouse_kernel_unavailable_total",
        "gatehouse_policy_bundle_refused_total",
        "gatehouse_policy_snapshot_info",
        "gatehouse_decision_cache_total",
        "gatehouse_job_queue_depth",
        "gatehouse_approvals_pending",
        "gatehouse_approval_forgery_total",
    ):
        assert needed in exported, needed

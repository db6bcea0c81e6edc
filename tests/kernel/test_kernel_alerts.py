"""The shipped alert rules are valid and name only metrics the server exports."""

from __future__ import annotations

import re
import shutil
import subprocess

import httpx
import yaml
from harness import ROOT, Server

ALERTS = ROOT / "examples" / "prometheus" / "alerts.yml"
REQUIRED = {
    "GatehouseDenySpike",
    "GatehouseQuarantineSpike",
    "GatehouseFailOpen",
    "GatehouseKernelUnavailable",
    "GatehouseBundleRefused",
    "GatehouseApprovalQueueAge",
}


def test_alert_rules_are_well_formed() -> None:
    doc = yaml.safe_load(ALERTS.read_text())
    rules = [r for g in doc["groups"] for r in g["rules"]]
    assert {r["alert"] for r in rules} == REQUIRED
    for r in rules:
        assert set(r) <= {"alert", "expr", "for", "labels", "annotations"}
        assert r["expr"].count("(") == r["expr"].count(")")
        assert r["labels"]["severity"] in {"warning", "critical"}
        assert r["annotations"]["summary"]
    if shutil.which("promtool"):
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
    ):
        assert needed in exported, needed

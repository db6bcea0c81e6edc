"""The red team's reports: the table people read, JSON for tools, JUnit XML for CI."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from typing import Any

from gatehouse.redteam.runner import Finding, Run
from gatehouse.redteam.scenario import PATHS

__all__ = ["as_json", "as_junit", "as_table"]


def _proof(f: Finding) -> str:
    """The shortest evidence of a finding: its rule and decision id, else its error code."""
    if f.status in ("error", "inconclusive"):
        return f.status
    if not f.outcome.evidence:
        return f.status
    line = f.outcome.evidence[-1]  # scenarios put the decisive evidence last
    rule = re.search(r"rule=(\S+)", line)
    dec = re.search(r"\b(dec_\w+)", line)
    if rule or dec:
        return " ".join(x for x in (rule.group(1) if rule else "", dec.group(1) if dec else "") if x)
    code = re.search(r"\b\d{3} ([a-z][a-z_]+)", line)
    return code.group(1) if code else _clip(line, 40)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def as_table(run: Run, *, verbose: bool = False) -> str:
    rows = [("path", "scenarios", "blocked", "evidence")]
    for key, title in PATHS.items():
        found = [f for f in run.findings if f.scenario.path == key]
        if not found:
            continue
        ok = sum(f.status == "blocked" for f in found)
        evidence = "; ".join(dict.fromkeys(_proof(f) for f in found))
        rows.append((title, str(len(found)), f"{ok}/{len(found)}", _clip(evidence, 90)))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [" | ".join([*(row[i].ljust(w) for i, w in enumerate(widths)), row[3]]).rstrip() for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in [*widths, 8]))
    total = len(run.findings)
    blocked = sum(f.status == "blocked" for f in run.findings)
    lines.append("")
    lines.append(f"{blocked}/{total} scenarios blocked against {run.url} in {run.seconds:.1f} s "
                 f"(range tenant {run.tenant}, removed)")  # fmt: skip
    for f in run.findings:
        if f.status != "blocked" or verbose:
            mark = {"blocked": "ok  ", "got_through": "FAIL", "inconclusive": "??  ", "error": "ERR "}[
                f.status
            ]
            lines.append(f"{mark} {f.scenario.id}: {f.scenario.title}")
            if f.outcome.detail:
                lines.append(f"       {f.outcome.detail}")
            for e in f.outcome.evidence:
                lines.append(f"       - {e}")
    for p in run.cleanup_problems:
        lines.append(f"cleanup: {p}")
    return "\n".join(lines)


def _finding(f: Finding) -> dict[str, Any]:
    return {"path": f.scenario.path, "id": f.scenario.id, "title": f.scenario.title, "status": f.status,
            "blocked": f.status == "blocked", "evidence": list(f.outcome.evidence),
            "detail": f.outcome.detail,
            "seconds": round(f.seconds, 4)}  # fmt: skip


def as_json(run: Run) -> str:
    paths = []
    for key, title in PATHS.items():
        found = [f for f in run.findings if f.scenario.path == key]
        paths.append({"path": key, "title": title, "scenarios": len(found),
                      "blocked": sum(f.status == "blocked" for f in found)})  # fmt: skip
    doc = {
        "url": run.url,
        "run_id": run.run_id,
        "tenant": run.tenant,
        "all_blocked": run.all_blocked,
        "scenarios": len(run.findings),
        "blocked": sum(f.status == "blocked" for f in run.findings),
        "seconds": round(run.seconds, 3),
        "paths": paths,
        "findings": [_finding(f) for f in run.findings],
        "cleanup_problems": list(run.cleanup_problems),
    }
    return json.dumps(doc, indent=2)


def as_junit(run: Run) -> str:
    failures = sum(f.status == "got_through" for f in run.findings)
    errors = sum(f.status in ("error", "inconclusive") for f in run.findings)
    suites = ET.Element("testsuites", name="gatehouse redteam", tests=str(len(run.findings)),
                        failures=str(failures), errors=str(errors), time=f"{run.seconds:.3f}")  # fmt: skip
    for key, title in PATHS.items():
        found = [f for f in run.findings if f.scenario.path == key]
        if not found:
            continue
        suite = ET.SubElement(suites, "testsuite", name=key, tests=str(len(found)),
                              failures=str(sum(f.status == "got_through" for f in found)),
                              errors=str(sum(f.status in ("error", "inconclusive") for f in found)),
                              time=f"{sum(f.seconds for f in found):.3f}")  # fmt: skip
        ET.SubElement(ET.SubElement(suite, "properties"), "property", name="title", value=title)
        for f in found:
            case = ET.SubElement(suite, "testcase", classname=f"redteam.{key}", name=f.scenario.id,
                                 time=f"{f.seconds:.3f}")  # fmt: skip
            if f.status == "got_through":
                ET.SubElement(
                    case, "failure", message=f.outcome.detail or "not blocked", type="got_through"
                ).text = "\n".join(f.outcome.evidence)
            elif f.status in ("error", "inconclusive"):
                ET.SubElement(case, "error", message=f.outcome.detail, type=f.status)
            ET.SubElement(case, "system-out").text = "\n".join([f.scenario.title, *f.outcome.evidence])
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"

"""`gatehouse policy`: check, simulate, explain, test and diff policy bundles offline.

Everything here runs the pure engine on local files: no server, no store. Exit codes follow
`gatehouse.cli`: 0 success (a simulation succeeds whatever it decides), 1 a check failed (a test
case, a diff that changes decisions), 2 invalid input (a policy that does not load, a malformed
job, fixture or JSON line). Error lines read `error: <where>: <what>`, lowercase, user input in
backticks.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import click
import yaml

from gatehouse.commands._jobs import iter_jsonl, job_context, parse_json
from gatehouse.errors import GatehouseError
from gatehouse.policy import DECISIONS, Decision, Policy, PolicyError, load

__all__ = ["policy"]

_JOB_HELP = "the job body as JSON, or @FILE to read it from a file (@- for stdin)"


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    raise click.exceptions.Exit(2)


def _read(path: str) -> str:
    try:
        if path == "-":
            return sys.stdin.read()
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        _fail(f"{path}: no such file")
    except IsADirectoryError:
        _fail(f"{path}: is a directory")
    except UnicodeDecodeError:
        _fail(f"{path}: not UTF-8 text")
    except OSError as exc:
        _fail(f"{path}: cannot read: {exc.strerror or exc}")


def _load(path: str) -> Policy:
    text = _read(path)
    try:
        return load(text)
    except PolicyError as exc:
        _fail(f"{path}: {exc.message}")


def _job(spec: str) -> dict[str, Any]:
    """The context for `--job`: inline JSON, or `@file`."""
    where = "--job"
    if spec.startswith("@"):
        where = spec[1:]
        text = _read(where)
    else:
        text = spec
    try:
        return job_context(parse_json(text))
    except GatehouseError as exc:
        _fail(f"{where}: {exc.message}")


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _remediation_line(r: Any) -> str:
    changes = [f"{k}={v}" for k, v in r.set.items()]
    changes += [f"labels.{k}={v}" for k, v in r.set_labels.items()]
    text = f"  - {r.id}"
    if r.description:
        text += f": {r.description}"
    if changes:
        text += f" [{', '.join(changes)}]"
    return text


def _decision_lines(d: Decision) -> list[str]:
    lines = [f"decision: {d.decision}  rule: {d.rule_id}  reason: {d.reason}"]
    if d.approval_ttl is not None:
        lines.append(f"approval ttl: {d.approval_ttl}s")
    if d.remediations:
        lines.append("remediations:")
        lines.extend(_remediation_line(r) for r in d.remediations)
    return lines


def _decide(p: Policy, ctx: Mapping[str, Any], where: str) -> Decision:
    try:
        return p.decide(ctx)
    except GatehouseError as exc:
        _fail(f"{where}: {exc.message}")


@click.group()
def policy() -> None:
    """Check, simulate, explain, test and diff policy bundles (offline)."""


@policy.command()
@click.argument("file")
def check(file: str) -> None:
    """Load and validate FILE; print its rule counts and snapshot."""
    p = _load(file)
    click.echo(
        f"ok: {p.name}: {len(p.rules)} rules, {len(p.output_rules)} output rules, snapshot {p.snapshot}"
    )


@policy.command()
@click.argument("file")
@click.option("--job", "job_spec", required=True, metavar="JSON|@FILE", help=_JOB_HELP)
@click.option("--json", "as_json", is_flag=True, help="print the decision as JSON")
def simulate(file: str, job_spec: str, as_json: bool) -> None:
    """Decide a job under FILE. Exits 0 whatever the decision."""
    p = _load(file)
    ctx = _job(job_spec)
    d = _decide(p, ctx, "--job")
    if as_json:
        _echo_json({**d.to_dict(), "policy_snapshot": p.snapshot})
        return
    for line in _decision_lines(d):
        click.echo(line)


@policy.command()
@click.argument("file")
@click.option("--job", "job_spec", required=True, metavar="JSON|@FILE", help=_JOB_HELP)
@click.option("--json", "as_json", is_flag=True, help="print the explanation as JSON")
def explain(file: str, job_spec: str, as_json: bool) -> None:
    """Show how every rule of FILE fares against a job, and which one wins."""
    p = _load(file)
    ctx = _job(job_spec)
    try:
        ex = p.explain(ctx)
    except GatehouseError as exc:
        _fail(f"--job: {exc.message}")
    if as_json:
        _echo_json(ex.to_dict())
        return
    rows = [("RULE", "DECISION", "RESULT")]
    rows += [(t.rule_id, t.decision, "MATCH" if t.matched else f"failed: {t.failed_field}") for t in ex.rules]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    for a, b, c in rows:
        click.echo(f"{a:<{w0}}  {b:<{w1}}  {c}".rstrip())
    if not ex.rules:
        click.echo("(the policy has no rules)")
    click.echo("")
    click.echo(f"winner: {ex.winner} ({ex.decision.decision})")
    click.echo(f"why: {ex.why}")
    click.echo(f"reason: {ex.decision.reason}")


# ---------------------------------------------------------------------------------------------
# test


_CASE_KEYS = ("name", "job", "expect")
_EXPECT_KEYS = ("decision", "rule_id")


def _case_lines(text: str) -> list[int | None]:
    """The line of each item of `cases`, for error messages (None where unknown)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return []
    if not isinstance(root, yaml.MappingNode):
        return []
    for knode, vnode in root.value:
        if getattr(knode, "value", None) == "cases" and isinstance(vnode, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in vnode.value]
    return []


def _fixtures(path: str) -> list[tuple[str, dict[str, Any], str, str | None]]:
    """`(name, context, expected decision, expected rule id or None)` for each case."""
    text = _read(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        _fail(f"{path}: {where}not valid YAML: {problem}")
    if not isinstance(data, dict) or "cases" not in data:
        _fail(f"{path}: fixtures need a top-level `cases` list")
    extra = [k for k in data if k != "cases"]
    if extra:
        _fail(f"{path}: unknown key `{extra[0]}` in the fixtures (expected cases)")
    cases = data["cases"]
    if not isinstance(cases, list) or not cases:
        _fail(f"{path}: `cases` must be a non-empty list")
    lines = _case_lines(text)
    out: list[tuple[str, dict[str, Any], str, str | None]] = []
    seen: set[str] = set()
    for i, case in enumerate(cases):
        line = lines[i] if i < len(lines) else None
        where = f"{path}: line {line}" if line else f"{path}: case {i + 1}"

        def bad(message: str, where: str = where) -> NoReturn:
            _fail(f"{where}: {message}")

        if not isinstance(case, dict):
            bad("each case must be a mapping with `name`, `job` and `expect`")
        for key in case:
            if key not in _CASE_KEYS:
                bad(f"unknown key `{key}` in a case (expected one of {', '.join(_CASE_KEYS)})")
        for key in _CASE_KEYS:
            if key not in case:
                bad(f"a case needs `{key}`")
        name = case["name"]
        if not isinstance(name, str) or not name:
            bad(f"case `name` must be a non-empty string, got `{name}`")
        if name in seen:
            bad(f"duplicate case name `{name}`")
        seen.add(name)
        try:
            ctx = job_context(case["job"])
        except GatehouseError as exc:
            bad(f"case `{name}`: {exc.message}")
        expect = case["expect"]
        if not isinstance(expect, dict):
            bad(f"case `{name}`: `expect` must be a mapping with `decision` and optional `rule_id`")
        for key in expect:
            if key not in _EXPECT_KEYS:
                bad(f"case `{name}`: unknown key `{key}` in `expect` (expected decision, rule_id)")
        if "decision" not in expect:
            bad(f"case `{name}`: `expect` needs `decision`")
        decision = expect["decision"]
        if decision not in DECISIONS:
            choices = ", ".join(DECISIONS)
            bad(f"case `{name}`: bad expected decision `{decision}` (expected one of {choices})")
        rule_id = expect.get("rule_id")
        if rule_id is not None and not isinstance(rule_id, str):
            bad(f"case `{name}`: `expect.rule_id` must be a string, got `{rule_id}`")
        out.append((name, ctx, decision, rule_id))
    return out


def _outcome(decision: str, rule_id: str | None) -> str:
    return f"{decision} (rule {rule_id})" if rule_id else decision


@policy.command("test")
@click.argument("file")
@click.argument("fixtures")
def test_(file: str, fixtures: str) -> None:
    """Run the cases of FIXTURES (YAML) against FILE. Exits 1 if any case fails."""
    p = _load(file)
    cases = _fixtures(fixtures)
    failed = 0
    for name, ctx, want, want_rule in cases:
        d = _decide(p, ctx, f"{fixtures}: case `{name}`")
        if d.decision == want and (want_rule is None or d.rule_id == want_rule):
            click.echo(f"PASS {name}")
            continue
        failed += 1
        click.echo(
            f"FAIL {name}: expected {_outcome(want, want_rule)}, got {_outcome(d.decision, d.rule_id)}"
        )
    click.echo(f"{len(cases) - failed} passed, {failed} failed")
    if failed:
        raise click.exceptions.Exit(1)


# ---------------------------------------------------------------------------------------------
# diff


@policy.command()
@click.argument("old")
@click.argument("new")
@click.option("--jobs", "jobs_path", required=True, metavar="JOBS.jsonl", help="one job body per line")
@click.option("--json", "as_json", is_flag=True, help="print the changes as JSON")
def diff(old: str, new: str, jobs_path: str, as_json: bool) -> None:
    """Decide every job of JOBS under OLD and NEW; list the jobs whose decision or rule changes.

    Exits 0 when nothing changes and 1 when something does, so CI can gate on it.
    """
    before, after = _load(old), _load(new)
    text = _read(jobs_path)
    try:
        jobs = list(iter_jsonl(text))
    except GatehouseError as exc:
        _fail(f"{jobs_path}: {exc.message}")
    changes: list[dict[str, Any]] = []
    for number, _job_body, ctx in jobs:
        a = _decide(before, ctx, f"{jobs_path}: line {number}")
        b = _decide(after, ctx, f"{jobs_path}: line {number}")
        if (a.decision, a.rule_id) != (b.decision, b.rule_id):
            changes.append(
                {
                    "line": number,
                    "topic": ctx["topic"],
                    "old": {"decision": a.decision, "rule_id": a.rule_id},
                    "new": {"decision": b.decision, "rule_id": b.rule_id},
                }
            )
    if as_json:
        _echo_json(
            {
                "old_snapshot": before.snapshot,
                "new_snapshot": after.snapshot,
                "jobs": len(jobs),
                "changed": len(changes),
                "changes": changes,
            }
        )
    else:
        for c in changes:
            o, n = c["old"], c["new"]
            click.echo(
                f"line {c['line']}: {c['topic']}: {o['decision']} ({o['rule_id']}) -> "
                f"{n['decision']} ({n['rule_id']})"
            )
        click.echo(f"{len(changes)} of {len(jobs)} jobs change decision")
    if changes:
        raise click.exceptions.Exit(1)


def _register_bundle_commands() -> None:
    from gatehouse.commands._bundle import push, sign

    policy.add_command(sign)
    policy.add_command(push)


_register_bundle_commands()

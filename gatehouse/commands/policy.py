"""`gatehouse policy`: check, simulate, explain, test and diff policy bundles offline.

Everything here runs the pure engine on local files: no server, no store. A job is judged as the
server judges it: the same ingress (`judged_context`: sanitising, classification of the prompt and
attachments with the bundle's classifier) and the bundle's `require` check, which refuses a job
lacking a required field (`missing_field`, the server's 422). A step (`--step`, a fixture's `step:`)
is judged with the context the server's step gate builds (`gatehouse.domain.steps.step_context`:
target, classifier labels and detectors over the params, the session history's counts and
provenance; the adapter catalog's effect and output trust), and the catalog's checks run before
the policy as on the server (`pre_policy`: params that break the action's schema are denied with
rule `param_schema`; an action a cataloged adapter lacks is `unknown_action`, exit 2). Exit codes follow
`gatehouse.cli`: 0 success (a simulation succeeds whatever it decides), 1 a check failed (a test
case, a diff that changes decisions), 2 invalid input (a policy that does not load, a malformed
job, fixture or JSON line). Error lines read `error: <where>: <what>`, lowercase, user input in
backticks.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

import click
import httpx
import yaml

from gatehouse.commands._jobs import iter_jsonl, job_context, judged_context, parse_json
from gatehouse.domain.approvals import DEFAULT_TTL
from gatehouse.domain.steps import pre_policy, step_context, step_of
from gatehouse.errors import GatehouseError, MissingField
from gatehouse.policy import DECISIONS, Decision, Policy, PolicyError, canonical_data, load
from gatehouse.policy._durations import parse_duration

__all__ = ["policy"]

_JOB_HELP = "the job body as JSON, or @FILE to read it from a file (@- for stdin)"
_STEP_HELP = (
    "a tool call as JSON, or @FILE: {adapter, action, params, session: {task, history}} "
    "(docs/policy.md, step rules); instead of --job"
)


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


def _envelope(text: str) -> tuple[str, dict[str, Any] | None] | None:
    """(bundle text, signature) when `text` is a signed envelope (`policy sign` writes one, and
    `PUT /api/v1/policy` takes one), else None: a JSON bundle never has a `bundle` key."""
    if not text.lstrip().startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or "bundle" not in data:
        return None
    bundle, signature = data["bundle"], data.get("signature")
    if not isinstance(bundle, str):
        raise PolicyError("a signed envelope's `bundle` must be the bundle's text")
    if signature is not None and not isinstance(signature, dict):
        raise PolicyError("a signed envelope's `signature` must be an object")
    return bundle, signature


def _load_with_signature(path: str) -> tuple[Policy, dict[str, Any] | None, bool]:
    """(policy, signature, was an envelope) for a bundle file or a signed envelope file."""
    text = _read(path)
    try:
        envelope = _envelope(text)
        if envelope is None:
            return load(text), None, False
        return load(envelope[0]), envelope[1], True
    except PolicyError as exc:
        where = f"{path}: bundle" if envelope is not None else path
        _fail(f"{where}: {exc.message}")


def _load(path: str) -> Policy:
    return _load_with_signature(path)[0]


def _job(spec: str, option: str = "--job") -> tuple[str, Any]:
    """(where, body) for `--job` or `--step`: inline JSON, or `@file`."""
    where = option
    if spec.startswith("@"):
        where = spec[1:]
        text = _read(where)
    else:
        text = spec
    try:
        return where, parse_json(text)
    except GatehouseError as exc:
        _fail(f"{where}: {exc.message}")


def _judge(p: Policy, where: str, job: Any, *, as_json: bool = False) -> dict[str, Any]:
    """The context the server would decide; a refusal (422 on the server) exits 2."""
    try:
        return judged_context(p, job)
    except MissingField as exc:
        if as_json:
            _echo_json({"error": {"code": exc.code, "message": exc.message, "details": exc.details}})
        _fail(f"{where}: {exc.message} ({exc.code})")
    except GatehouseError as exc:
        _fail(f"{where}: {exc.message}")


def _step_ctx(p: Policy, where: str, body: Any) -> tuple[dict[str, Any], Decision | None]:
    """The context the server's step gate would decide for a step body, and the catalog's deny
    before the policy (`param_schema`) if any; a bad body or an unknown action exits 2."""
    try:
        step = step_of(body)
        pre = pre_policy(p, step)
        return step_context(p, step), pre
    except GatehouseError as exc:
        _fail(
            f"{where}: {exc.message} ({exc.code})"
            if exc.code == "unknown_action"
            else f"{where}: {exc.message}"
        )


def _context(
    p: Policy, job_spec: str | None, step_spec: str | None, *, as_json: bool
) -> tuple[str, dict[str, Any], Decision | None]:
    """(where, context, the catalog's deny before policy) for exactly one of `--job` and `--step`."""
    if (job_spec is None) == (step_spec is None):
        _fail("give exactly one of --job and --step")
    if step_spec is not None:
        where, body = _job(step_spec, "--step")
        return (where, *_step_ctx(p, where, body))
    assert job_spec is not None
    where, job = _job(job_spec)
    return where, _judge(p, where, job, as_json=as_json), None


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
@click.option("--canonical", is_flag=True, help="print the bundle in the canonical form (YAML)")
def check(file: str, canonical: bool) -> None:
    """Load and validate FILE (a bundle, or a signed envelope); print its rule counts and snapshot.

    Runs every check the server's install runs, except the signature, which needs the server's
    trusted keys.
    """
    p, signature, enveloped = _load_with_signature(file)
    if canonical:
        text = yaml.safe_dump(canonical_data(p.bundle), sort_keys=False, allow_unicode=True, width=100)
        click.echo(text, nl=False)
        return
    adapters = f", {len(p.catalog.adapters)} adapters" if p.catalog else ""
    click.echo(
        f"ok: {p.name}: {len(p.rules)} rules, {len(p.output_rules)} output rules{adapters}, "
        f"snapshot {p.snapshot}"
    )
    if enveloped:
        sig = signature or {}
        state = f"key `{sig.get('key_id')}`, serial {sig.get('serial')}" if signature else "unsigned"
        click.echo(f"envelope: {state} (the server verifies the signature)")


@policy.command()
@click.argument("file")
@click.option("--job", "job_spec", metavar="JSON|@FILE", help=_JOB_HELP)
@click.option("--step", "step_spec", metavar="JSON|@FILE", help=_STEP_HELP)
@click.option("--json", "as_json", is_flag=True, help="print the decision as JSON")
def simulate(file: str, job_spec: str | None, step_spec: str | None, as_json: bool) -> None:
    """Decide a job (--job) or a tool call (--step) under FILE. Exits 0 whatever the decision."""
    p = _load(file)
    where, ctx, pre = _context(p, job_spec, step_spec, as_json=as_json)
    d = pre or _decide(p, ctx, where)
    if as_json:
        extra = {"target": ctx["target"]} if step_spec is not None else {}
        _echo_json({**d.to_dict(), **extra, "policy_snapshot": p.snapshot})
        return
    if step_spec is not None:
        click.echo(f"target: {ctx['target']}")
    for line in _decision_lines(d):
        click.echo(line)


@policy.command()
@click.argument("file")
@click.option("--job", "job_spec", metavar="JSON|@FILE", help=_JOB_HELP)
@click.option("--step", "step_spec", metavar="JSON|@FILE", help=_STEP_HELP)
@click.option("--json", "as_json", is_flag=True, help="print the explanation as JSON")
def explain(file: str, job_spec: str | None, step_spec: str | None, as_json: bool) -> None:
    """Show how every rule of FILE fares against a job (--job) or a tool call (--step), and which
    one wins."""
    p = _load(file)
    where, ctx, pre = _context(p, job_spec, step_spec, as_json=as_json)
    try:
        ex = p.explain(ctx)
    except GatehouseError as exc:
        _fail(f"{where}: {exc.message}")
    if pre is not None:
        # As the server explains a check that denies before the policy: its deny wins.
        ex = replace(ex, decision=pre, winner=pre.rule_id, why=pre.reason + " (checked before policy)")
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


_CASE_KEYS = ("name", "job", "step", "expect")
# `error` expects the job to be refused before any decision, as the server's 422 does
# (`missing_field`); a case expects a decision or an error, not both.
_EXPECT_KEYS = ("decision", "rule_id", "error")
_CASE_ERRORS = ("missing_field",)


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


Case = tuple[str, str, dict[str, Any], str, str | None]


def _fixtures(path: str) -> list[Case]:
    """`(name, kind, body, expected decision or `error:<code>`, expected rule id or None)` for
    each case; `kind` is `job` or `step` (a tool call with the session history it assumes). The
    body is validated here; it is judged (ingress, `require`) per policy."""
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
    out: list[Case] = []
    seen: set[str] = set()
    for i, case in enumerate(cases):
        line = lines[i] if i < len(lines) else None
        where = f"{path}: line {line}" if line else f"{path}: case {i + 1}"

        def bad(message: str, where: str = where) -> NoReturn:
            _fail(f"{where}: {message}")

        if not isinstance(case, dict):
            bad("each case must be a mapping with `name`, `job` (or `step`) and `expect`")
        for key in case:
            if key not in _CASE_KEYS:
                bad(f"unknown key `{key}` in a case (expected one of {', '.join(_CASE_KEYS)})")
        for key in ("name", "expect"):
            if key not in case:
                bad(f"a case needs `{key}`")
        if ("job" in case) == ("step" in case):
            bad("a case needs one of `job` and `step`")
        kind = "step" if "step" in case else "job"
        name = case["name"]
        if not isinstance(name, str) or not name:
            bad(f"case `name` must be a non-empty string, got `{name}`")
        if name in seen:
            bad(f"duplicate case name `{name}`")
        seen.add(name)
        try:
            if kind == "step":
                step_of(case["step"])
            else:
                job_context(case["job"])
        except GatehouseError as exc:
            bad(f"case `{name}`: {exc.message}")
        expect = case["expect"]
        if not isinstance(expect, dict):
            bad(f"case `{name}`: `expect` must be a mapping with `decision` and optional `rule_id`")
        for key in expect:
            if key not in _EXPECT_KEYS:
                bad(f"case `{name}`: unknown key `{key}` in `expect` (expected decision, rule_id, error)")
        if ("decision" in expect) == ("error" in expect):
            bad(f"case `{name}`: `expect` needs `decision` or `error`")
        if "error" in expect:
            if kind == "step":
                bad(f"case `{name}`: a step case expects a `decision`, not an `error`")
            error = expect["error"]
            if error not in _CASE_ERRORS or "rule_id" in expect:
                choices = ", ".join(_CASE_ERRORS)
                bad(f"case `{name}`: bad expected error `{error}` (expected one of {choices}, no rule_id)")
            out.append((name, kind, case["job"], f"error:{error}", None))
            continue
        decision = expect["decision"]
        if decision not in DECISIONS:
            choices = ", ".join(DECISIONS)
            bad(f"case `{name}`: bad expected decision `{decision}` (expected one of {choices})")
        rule_id = expect.get("rule_id")
        if rule_id is not None and not isinstance(rule_id, str):
            bad(f"case `{name}`: `expect.rule_id` must be a string, got `{rule_id}`")
        out.append((name, kind, case[kind], decision, rule_id))
    return out


def _outcome(decision: str, rule_id: str | None) -> str:
    if decision.startswith("error:"):
        return f"refused ({decision[6:]}{': ' + rule_id if rule_id else ''})"
    return f"{decision} (rule {rule_id})" if rule_id else decision


def _result(p: Policy, job: Any, where: str) -> tuple[str, str]:
    """(decision, rule id) the server would answer, or (`error:<code>`, detail) for a refusal."""
    try:
        ctx = judged_context(p, job)
    except MissingField as exc:
        return f"error:{exc.code}", ", ".join(exc.fields)
    except GatehouseError as exc:
        _fail(f"{where}: {exc.message}")
    d = _decide(p, ctx, where)
    return d.decision, d.rule_id


@policy.command("test")
@click.argument("file")
@click.argument("fixtures")
def test_(file: str, fixtures: str) -> None:
    """Run the cases of FIXTURES (YAML) against FILE. Exits 1 if any case fails."""
    p = _load(file)
    cases = _fixtures(fixtures)
    failed = 0
    for name, kind, body, want, want_rule in cases:
        where = f"{fixtures}: case `{name}`"
        if kind == "step":
            ctx, pre = _step_ctx(p, where, body)
            d = pre or _decide(p, ctx, where)
            got, got_rule = d.decision, d.rule_id
        else:
            got, got_rule = _result(p, body, where)
        if got == want and (want_rule is None or got_rule == want_rule):
            click.echo(f"PASS {name}")
            continue
        failed += 1
        click.echo(f"FAIL {name}: expected {_outcome(want, want_rule)}, got {_outcome(got, got_rule)}")
    click.echo(f"{len(cases) - failed} passed, {failed} failed")
    if failed:
        raise click.exceptions.Exit(1)


# ---------------------------------------------------------------------------------------------
# diff


@policy.command()
@click.argument("old")
@click.argument("new")
@click.option("--jobs", "jobs_path", metavar="JOBS.jsonl", help="one job body per line")
@click.option(
    "--decisions",
    "decisions_src",
    metavar="URL|FILE",
    help="replay the decision log of a running server (key in $GATEHOUSE_API_KEY) or an export of it",
)
@click.option("--json", "as_json", is_flag=True, help="print the changes as JSON")
@click.option("--since", default=None, help="with a URL: only decisions since (RFC 3339 or e.g. 7d)")
@click.option(
    "--limit",
    type=click.IntRange(1),
    default=10000,
    show_default=True,
    help="with a URL: at most this many submit and as many step decisions",
)
@click.option("--tenant", envvar="GATEHOUSE_TENANT", default=None, help="with a URL: the tenant's log")
@click.option(
    "--key",
    envvar=["GATEHOUSE_API_KEY", "GATEHOUSE_KEY", "GATEHOUSE_ADMIN_KEY"],
    default=None,
    help="with a URL: API key (default $GATEHOUSE_API_KEY)",
)
@click.option("--export", "export_path", metavar="FILE", default=None, help="with a URL: also write the log")
def diff(
    old: str,
    new: str,
    jobs_path: str | None,
    decisions_src: str | None,
    as_json: bool,
    since: str | None,
    limit: int,
    tenant: str | None,
    key: str | None,
    export_path: str | None,
) -> None:
    """Decide every job of JOBS (--jobs), or replay every request of the decision log
    (--decisions: submits, and steps with their session's params, history and kept outputs,
    which needs an admin's key), under OLD and NEW; list those whose decision or rule changes.

    Exits 0 when nothing changes and 1 when something does, so CI can gate on it.
    """
    if (jobs_path is None) == (decisions_src is None):
        _fail("give exactly one of --jobs and --decisions")
    before, after = _load(old), _load(new)
    if decisions_src is not None:
        _diff_decisions(before, after, decisions_src, as_json=as_json, since=since, limit=limit,
                        tenant=tenant, key=key, export_path=export_path)  # fmt: skip
        return
    assert jobs_path is not None
    text = _read(jobs_path)
    try:
        jobs = list(iter_jsonl(text))
    except GatehouseError as exc:
        _fail(f"{jobs_path}: {exc.message}")
    changes: list[dict[str, Any]] = []
    for number, job, ctx in jobs:
        # A refused job (a field the bundle requires) is an outcome too: adding a `require` entry
        # changes what the server answers.
        a = _result(before, job, f"{jobs_path}: line {number}")
        b = _result(after, job, f"{jobs_path}: line {number}")
        if a != b:
            changes.append(
                {"line": number, "topic": ctx["topic"], "old": _outcome_data(*a), "new": _outcome_data(*b)}
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
            click.echo(f"line {c['line']}: {c['topic']}: {_outcome_text(o)} -> {_outcome_text(n)}")
        click.echo(f"{len(changes)} of {len(jobs)} jobs change decision")
    if changes:
        raise click.exceptions.Exit(1)


def _diff_decisions(
    before: Policy,
    after: Policy,
    source: str,
    *,
    as_json: bool,
    since: str | None,
    limit: int,
    tenant: str | None,
    key: str | None,
    export_path: str | None,
) -> None:
    """`policy diff --decisions`: the decision log replayed under both bundles (`_replay`)."""
    from gatehouse.client import ApiError, Client
    from gatehouse.commands._replay import fetch_records, read_records, replay

    if source.startswith(("http://", "https://")):
        if not key:
            _fail("--decisions URL needs an API key: set $GATEHOUSE_API_KEY or give --key")
        try:
            with Client(source, api_key=key, tenant=tenant) as client:
                records = list(fetch_records(client, since=since, limit=limit))
        except ApiError as exc:
            _fail(f"{source}: {exc}")
        except httpx.HTTPError as exc:
            _fail(f"cannot reach {source}: {exc}")
        if export_path is not None:
            lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
            Path(export_path).write_text(lines, encoding="utf-8")
    else:
        if export_path is not None:
            _fail("--export applies to a --decisions URL")
        try:
            records = [r for _, r in read_records(_read(source))]
        except ValueError as exc:
            _fail(f"{source}: {exc}")
    result = replay(before, after, iter(records))
    if as_json:
        _echo_json({"source": source, **result.to_dict()})
    else:
        for g in result.groups():
            o, n = g["old"], g["new"]
            click.echo(
                f"{o['decision']} ({o['rule_id']}) -> {n['decision']} ({n['rule_id']}): {g['count']} requests"
            )
            for req in g["requests"]:
                click.echo(f"  {req['decision_id']}  {req['tenant'] or '-'}  {_request_text(req)}")
        skipped = ", ".join(f"{n} {why}" for why, n in sorted(result.skipped.items()))
        click.echo(
            f"{len(result.changes)} of {result.replayed} replayed requests change decision "
            f"({result.records} records{'; skipped: ' + skipped if skipped else ''})"
        )
        if result.unlike_recorded:
            click.echo(
                f"note: OLD decides {result.unlike_recorded} requests otherwise than the server did: "
                "is OLD the bundle that judged them?"
            )
    if result.changes:
        raise click.exceptions.Exit(1)


def _request_text(req: Mapping[str, Any]) -> str:
    """A changed request in a group: a submit's topic; a step's target, session and step id."""
    if req.get("stage") == "step":
        return f"{req.get('target')}  session {req.get('session_id')} step {req.get('step_id')}"
    return str(req.get("topic"))


def _outcome_data(decision: str, rule_id: str) -> dict[str, Any]:
    if decision.startswith("error:"):
        return {"decision": None, "error": decision[6:], "fields": rule_id.split(", ")}
    return {"decision": decision, "rule_id": rule_id}


def _outcome_text(o: Mapping[str, Any]) -> str:
    if o["decision"] is None:
        return f"refused ({o['error']}: {', '.join(o['fields'])})"
    return f"{o['decision']} ({o['rule_id']})"


# ---------------------------------------------------------------------------------------------
# lint


def _seconds(text: str, option: str) -> int:
    try:
        return parse_duration(text)
    except ValueError as exc:
        _fail(f"{option}: {exc}")


@policy.command()
@click.argument("file")
@click.option("--json", "as_json", is_flag=True, help="print the findings as JSON")
@click.option(
    "--approval-default",
    default=f"{DEFAULT_TTL}s",
    show_default=True,
    metavar="DURATION",
    help="how long an approval lasts on your servers when a rule gives no approval_ttl",
)
@click.option(
    "--long-approval",
    default="1h",
    show_default=True,
    metavar="DURATION",
    help="an approval default past this makes a require_approval rule without approval_ttl a warning",
)
def lint(file: str, as_json: bool, approval_default: str, long_approval: str) -> None:
    """Find shadowed, conflicting and unreachable rules (and more) in FILE before it ships.

    Each finding names its rules and their lines. Exits 1 when there are errors, 0 with warnings
    only (or none), 2 when FILE does not load.
    """
    from gatehouse.policy.lint import ERROR
    from gatehouse.policy.lint import lint as run_lint

    p = _load(file)
    findings = run_lint(
        p,
        approval_default=_seconds(approval_default, "--approval-default"),
        long_approval=_seconds(long_approval, "--long-approval"),
    )
    errors = sum(1 for f in findings if f.severity == ERROR)
    warnings = len(findings) - errors
    if as_json:
        _echo_json(
            {
                "file": file,
                "policy_snapshot": p.snapshot,
                "rules": len(p.rules),
                "errors": errors,
                "warnings": warnings,
                "findings": [f.to_dict() for f in findings],
            }
        )
    else:
        for f in findings:
            click.echo(f"{file}: {f.text()}")
        click.echo(f"{len(p.rules)} rules: {errors} errors, {warnings} warnings")
    if errors:
        raise click.exceptions.Exit(1)


def _register_bundle_commands() -> None:
    from gatehouse.commands._bundle import push, sign
    from gatehouse.commands._shadow import shadow

    policy.add_command(sign)
    policy.add_command(push)
    policy.add_command(shadow)


_register_bundle_commands()

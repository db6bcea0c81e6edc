"""`gatehouse decisions list|show`: the decision log of a tenant (every gate, every outcome)."""

from __future__ import annotations

import click

from gatehouse.client import Client
from gatehouse.commands._http import client_options, emit, json_option, more, table

COLUMNS = [
    ("DECISION", "decision_id"),
    ("STAGE", "stage"),
    ("RESULT", "result"),
    ("RULE", "rule_id"),
    ("JOB", "job_id"),
    ("TIME", "timestamp"),
]


@click.group()
def decisions() -> None:
    """Read the decision log: submits (denied ones too), dispatches, steps, outputs, approvals."""


@decisions.command("list")
@click.option("--stage", type=click.Choice(["submit", "dispatch", "step", "output", "simulate", "approval"]))
@click.option("--result", type=click.Choice(["allow", "deny", "require_approval", "redact", "quarantine"]))
@click.option("--rule", "rule_id", help="only decisions of this rule id")
@click.option("--since", help="an RFC 3339 time or a time ago with its unit (30s, 15m, 1h, 2d)")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@click.option("--cursor", help="the `next_cursor` of the previous page")
@json_option
@client_options
def list_(
    client: Client,
    stage: str | None,
    result: str | None,
    rule_id: str | None,
    since: str | None,
    limit: int,
    cursor: str | None,
    as_json: bool,
) -> None:
    """List decision records, newest first."""
    page = client.request(
        "GET", "/api/v1/decisions", stage=stage, result=result, rule_id=rule_id, since=since,
        limit=limit, cursor=cursor,
    )  # fmt: skip
    if as_json:
        emit(page)
        return
    table(page["decisions"], COLUMNS, empty="no decisions")
    more(page)


@decisions.command("show")
@click.argument("decision_id")
@client_options
def show(client: Client, decision_id: str) -> None:
    """Show one decision record (JSON), with its remediations."""
    emit(client.request("GET", f"/api/v1/decisions/{decision_id}"))

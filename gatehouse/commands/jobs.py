"""`gatehouse jobs list|show|decisions|cancel`: the jobs of a tenant, from the terminal."""

from __future__ import annotations

import click

from gatehouse.client import Client
from gatehouse.commands._http import client_options, emit, json_option, more, table

COLUMNS = [
    ("JOB", "job_id"),
    ("STATUS", "status"),
    ("TOPIC", "topic"),
    ("SUBMITTED BY", "submitted_by"),
    ("CREATED", "created_at"),
]


@click.group()
def jobs() -> None:
    """List, show and cancel jobs; read a job's decisions."""


@jobs.command("list")
@click.option("--status", help="only jobs in this status (queued, pending_approval, succeeded, ...)")
@click.option("--topic", help="only jobs on this topic")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@click.option("--cursor", help="the `next_cursor` of the previous page")
@json_option
@client_options
def list_(
    client: Client, status: str | None, topic: str | None, limit: int, cursor: str | None, as_json: bool
) -> None:
    """List jobs, newest first; one page at a time (`--cursor`)."""
    page = client.request("GET", "/api/v1/jobs", status=status, topic=topic, limit=limit, cursor=cursor)
    if as_json:
        emit(page)
        return
    table(page["jobs"], COLUMNS, empty="no jobs")
    more(page)


@jobs.command("show")
@click.argument("job_id")
@client_options
def show(client: Client, job_id: str) -> None:
    """Show one job (JSON)."""
    emit(client.job(job_id))


@jobs.command("decisions")
@click.argument("job_id")
@json_option
@client_options
def decisions(client: Client, job_id: str, as_json: bool) -> None:
    """The decision records of one job: submit, dispatch, approval, output."""
    records = client.decisions(job_id)
    if as_json:
        emit(records)
        return
    columns = [("DECISION", "decision_id"), ("STAGE", "stage"), ("RESULT", "result"),
               ("RULE", "rule_id"), ("TIME", "timestamp")]  # fmt: skip
    table(records, columns, empty="no decisions")


@jobs.command("cancel")
@click.argument("job_id")
@client_options
def cancel(client: Client, job_id: str) -> None:
    """Cancel a job that has not run yet."""
    emit(client.request("POST", f"/api/v1/jobs/{job_id}/cancel"))

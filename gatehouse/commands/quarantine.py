"""`gatehouse quarantine list|show|release|discard`: outputs held by the output gate."""

from __future__ import annotations

from typing import Any

import click

from gatehouse.client import ApiError, Client
from gatehouse.commands._http import client_options, emit, json_option, table

COLUMNS = [
    ("JOB", "job_id"),
    ("TOPIC", "topic"),
    ("RULE", "rule_id"),
    ("SUBMITTED BY", "submitted_by"),
    ("HELD SINCE", "quarantined_at"),
]


@click.group()
def quarantine() -> None:
    """Outputs the output gate held: list, show (masked), release or discard (a reviewer's key)."""


def _held(client: Client) -> list[dict[str, Any]]:
    return list(client.request("GET", "/api/v1/quarantine")["quarantine"])


@quarantine.command("list")
@json_option
@client_options
def list_(client: Client, as_json: bool) -> None:
    """List held outputs."""
    held = _held(client)
    if as_json:
        emit({"quarantine": held})
        return
    table(held, COLUMNS, empty="nothing in quarantine")


@quarantine.command("show")
@click.argument("job_id")
@client_options
def show(client: Client, job_id: str) -> None:
    """Show one held output: its findings and a preview with every finding masked (JSON)."""
    found = [h for h in _held(client) if h["job_id"] == job_id]
    if not found:
        raise ApiError(404, "job_not_found", f"no job `{job_id}` in quarantine")
    emit(found[0])


def _review(client: Client, verb: str, job_id: str, comment: str, yes: bool) -> None:
    if not yes:
        click.confirm(f"{verb} the held output of {job_id}?", abort=True, err=True)
    emit(client.request("POST", f"/api/v1/quarantine/{job_id}/{verb}", json={"comment": comment}))


@quarantine.command("release")
@click.argument("job_id")
@click.option("--comment", default="", help="why; kept in the audit log")
@click.option("--yes", "-y", is_flag=True, help="do not ask for confirmation")
@client_options
def release(client: Client, job_id: str, comment: str, yes: bool) -> None:
    """Release a held output to the agent as it is; asks first unless --yes."""
    _review(client, "release", job_id, comment, yes)


@quarantine.command("discard")
@click.argument("job_id")
@click.option("--comment", default="", help="why; kept in the audit log")
@click.option("--yes", "-y", is_flag=True, help="do not ask for confirmation")
@client_options
def discard(client: Client, job_id: str, comment: str, yes: bool) -> None:
    """Discard a held output: the job fails and the agent never sees it; asks first unless --yes."""
    _review(client, "discard", job_id, comment, yes)

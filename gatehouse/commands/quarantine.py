"""`gatehouse quarantine list|show|release|discard`: outputs held by the output gate."""

from __future__ import annotations

from typing import Any

import click

from gatehouse.client import ApiError, Client
from gatehouse.commands._http import (
    client_options,
    cursor_option,
    emit,
    json_option,
    limit_option,
    more,
    table,
)

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


# `show` looks for a job page by page, up to this many pages (of 500) before it gives up.
_SHOW_PAGES = 20


def _page(client: Client, limit: int, cursor: str | None) -> dict[str, Any]:
    page: dict[str, Any] = client.request("GET", "/api/v1/quarantine", limit=limit, cursor=cursor)
    return page


@quarantine.command("list")
@limit_option(200)
@cursor_option
@json_option
@client_options
def list_(client: Client, limit: int, cursor: str | None, as_json: bool) -> None:
    """List held outputs, newest first; one page at a time (`--cursor`)."""
    page = _page(client, limit, cursor)
    if as_json:
        emit(page)
        return
    table(page["quarantine"], COLUMNS, empty="nothing in quarantine")
    more(page)


@quarantine.command("show")
@click.argument("job_id")
@client_options
def show(client: Client, job_id: str) -> None:
    """Show one held output: its findings and a preview with every finding masked (JSON)."""
    cursor = None
    for _ in range(_SHOW_PAGES):
        page = _page(client, 500, cursor)
        found = [h for h in page["quarantine"] if h["job_id"] == job_id]
        if found:
            emit(found[0])
            return
        cursor = page.get("next_cursor")
        if not cursor:
            break
    raise ApiError(404, "job_not_found", f"no job `{job_id}` in quarantine")


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

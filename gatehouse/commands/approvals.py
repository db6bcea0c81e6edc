"""`gatehouse approvals list|show|approve|reject`: the approval queue, from the terminal."""

from __future__ import annotations

import click

from gatehouse.client import Client
from gatehouse.commands._http import (
    client_options,
    cursor_option,
    emit,
    json_option,
    limit_option,
    more,
    table,
)
from gatehouse.domain.states import APPROVAL_STATUSES

COLUMNS = [
    ("APPROVAL", "approval_id"),
    ("KIND", "kind"),
    ("JOB OR STEP", "subject"),
    ("STATUS", "status"),
    ("RULE", "rule_id"),
    ("EXPIRES", "expires_at"),
]


@click.group()
def approvals() -> None:
    """The approval queue: list, show, approve and reject (an approver's key)."""


@approvals.command("list")
@click.option(
    "--status",
    type=click.Choice(sorted(APPROVAL_STATUSES)),
    default="pending",
    show_default=True,
)
@limit_option(200)
@cursor_option
@json_option
@client_options
def list_(client: Client, status: str, limit: int, cursor: str | None, as_json: bool) -> None:
    """List approval requests (pending ones by default), oldest first; one page at a time
    (`--cursor`)."""
    page = client.request("GET", "/api/v1/approvals", status=status, limit=limit, cursor=cursor)
    if as_json:
        emit(page)
        return
    rows = [{**a, "subject": a.get("job_id") or f"{a.get('session_id')}/{a.get('step_id')}"}
            for a in page["approvals"]]  # fmt: skip
    table(rows, COLUMNS, empty=f"no {status} approvals")
    more(page)


@approvals.command("show")
@click.argument("approval_id")
@client_options
def show(client: Client, approval_id: str) -> None:
    """Show one approval request (JSON)."""
    emit(client.request("GET", f"/api/v1/approvals/{approval_id}"))


def _decide(client: Client, verb: str, target: str, comment: str | None, yes: bool) -> None:
    if not yes:
        click.confirm(f"{verb} {target}?", abort=True, err=True)
    body = {"comment": comment} if comment else {}
    emit(client.request("POST", f"/api/v1/approvals/{target}/{verb}", json=body))


@approvals.command("approve")
@click.argument("target", metavar="JOB_ID|APPROVAL_ID")
@click.option("--comment", help="why; kept with the approval and in the audit log")
@click.option("--yes", "-y", is_flag=True, help="do not ask for confirmation")
@client_options
def approve(client: Client, target: str, comment: str | None, yes: bool) -> None:
    """Approve a job (its id) or a step (its approval id); asks first unless --yes."""
    _decide(client, "approve", target, comment, yes)


@approvals.command("reject")
@click.argument("target", metavar="JOB_ID|APPROVAL_ID")
@click.option("--comment", help="why; kept with the approval and in the audit log")
@click.option("--yes", "-y", is_flag=True, help="do not ask for confirmation")
@client_options
def reject(client: Client, target: str, comment: str | None, yes: bool) -> None:
    """Reject a job (its id) or a step (its approval id); asks first unless --yes."""
    _decide(client, "reject", target, comment, yes)

"""`gatehouse incident contain|list|lift`: kill switches during an incident."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
import httpx

from gatehouse.client import ApiError, Client
from gatehouse.commands._http import emit
from gatehouse.commands._options import key_option, url_option


def _client(url: str, key: str) -> Client:
    return Client(url, api_key=key)


F = TypeVar("F", bound=Callable[..., Any])


def _server_options(fn: F) -> F:
    # Not `client_options`: here `--tenant` names the tenant to contain, not the acting one.
    return url_option(key_option(help="an admin API key")(fn))


@click.group()
def incident() -> None:
    """Contain a tenant, an identity or a tool adapter at once (and lift it again)."""


@incident.command("contain")
@click.option("--tenant", help="contain this tenant: no submit, no dispatch, results held")
@click.option("--identity", "identity_id", help="contain this identity id: every request refused")
@click.option(
    "--adapter",
    help="contain a tool adapter: every step denied, its minted credentials revoked (global admin)",
)
@click.option("--reason", required=True, help="why; shown in every refusal and the audit log")
@click.option(
    "--force",
    is_flag=True,
    help="contain a tenant or identity the server does not know (yet); without it, a typo is refused",
)
@_server_options
def contain(
    url: str,
    key: str,
    tenant: str | None,
    identity_id: str | None,
    adapter: str | None,
    reason: str,
    force: bool,
) -> None:
    """Contain one tenant, identity or adapter at once (admin).

    A contained tenant gets no job past the submit or dispatch gate, and results of its running
    jobs are quarantined; a contained identity is refused on every route; a contained adapter
    gets every step denied and its live minted credentials revoked. Prints the containment,
    whose id `gatehouse incident lift` takes.

    \b
      gatehouse incident contain --tenant acme --reason "agent loop deleting tickets"
      gatehouse incident contain --identity idn_... --reason "key leaked in a log"
      gatehouse incident contain --adapter billing --reason "refunds to unknown accounts"
    """
    targets = {k: v for k, v in (("tenant", tenant), ("identity", identity_id), ("adapter", adapter)) if v}
    if len(targets) != 1:
        raise click.UsageError("give exactly one of --tenant, --identity or --adapter")
    body: dict[str, Any] = {**targets, "reason": reason}
    if force:
        body["force"] = True
    _run(lambda c: emit(c.request("POST", "/api/v1/incidents/contain", json=body)), url, key)


@incident.command("list")
@click.option("--all", "show_all", is_flag=True, help="include lifted containments")
@_server_options
def list_(url: str, key: str, show_all: bool) -> None:
    """List the containments in force (with --all, lifted ones too)."""

    def show(c: Client) -> None:
        found = c.incidents(active=not show_all)
        if not found:
            click.echo("no containments" if show_all else "no containments in force")
            return
        click.echo(f"{'ID':<35}  {'KIND':<8} {'TARGET':<24} {'STATE':<10} REASON")
        for i in found:
            state = "active" if i["active"] else f"lifted {i['lifted_at']}"
            click.echo(f"{i['id']:<35}  {i['kind']:<8} {i['target']:<24} {state:<10} {i['reason']}")

    _run(show, url, key)


@incident.command("lift")
@click.argument("incident_id")
@_server_options
def lift(url: str, key: str, incident_id: str) -> None:
    """Lift the containment INCIDENT_ID (the `id` that contain and list print): everything it
    held runs again as before (admin)."""
    _run(lambda c: emit(c.lift(incident_id)), url, key)


def _run(action: Callable[[Client], None], url: str, key: str) -> None:
    client = _client(url, key)
    try:
        action(client)
    except ApiError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1 if exc.status < 500 else 3)
    except httpx.HTTPError as exc:
        # One line, not a traceback: the usual cause is a server that is not running.
        click.echo(f"error: cannot reach {url}: {exc}", err=True)
        sys.exit(3)
    finally:
        client.close()

"""`gatehouse incident contain|list|lift`: kill switches during an incident."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from gatehouse.client import ApiError, Client
from gatehouse.commands._http import emit


def _client(url: str, key: str) -> Client:
    return Client(url, api_key=key)


F = TypeVar("F", bound=Callable[..., Any])


def _server_options(fn: F) -> F:
    # Not `client_options`: here `--tenant` names the tenant to contain, not the acting one.
    fn = click.option("--key", envvar=["GATEHOUSE_KEY", "GATEHOUSE_ADMIN_KEY"], required=True)(fn)
    url = click.option("--url", envvar="GATEHOUSE_URL", default="http://127.0.0.1:8081", show_default=True)
    return url(fn)


@click.group()
def incident() -> None:
    """Contain a tenant or an identity at once (and lift it again)."""


@incident.command("contain")
@click.option("--tenant", help="contain this tenant: no submit, no dispatch, results held")
@click.option("--identity", "identity_id", help="contain this identity id: every request refused")
@click.option("--adapter", help="contain a tool adapter (needs the broker)")
@click.option("--reason", required=True, help="why; shown in every refusal and the audit log")
@_server_options
def contain(
    url: str, key: str, tenant: str | None, identity_id: str | None, adapter: str | None, reason: str
) -> None:
    targets = {k: v for k, v in (("tenant", tenant), ("identity", identity_id), ("adapter", adapter)) if v}
    if len(targets) != 1:
        raise click.UsageError("give exactly one of --tenant, --identity or --adapter")
    _run(lambda c: emit(c.contain(reason=reason, **targets)), url, key)


@incident.command("list")
@click.option("--all", "show_all", is_flag=True, help="include lifted containments")
@_server_options
def list_(url: str, key: str, show_all: bool) -> None:
    def show(c: Client) -> None:
        for i in c.incidents(active=not show_all):
            state = "active" if i["active"] else f"lifted {i['lifted_at']}"
            click.echo(f"{i['id']}  {i['kind']:<8} {i['target']:<24} {state:<10} {i['reason']}")

    _run(show, url, key)


@incident.command("lift")
@click.argument("incident_id")
@_server_options
def lift(url: str, key: str, incident_id: str) -> None:
    _run(lambda c: emit(c.lift(incident_id)), url, key)


def _run(action: Callable[[Client], None], url: str, key: str) -> None:
    client = _client(url, key)
    try:
        action(client)
    except ApiError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1 if exc.status < 500 else 3)
    finally:
        client.close()

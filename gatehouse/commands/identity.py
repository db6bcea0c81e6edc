"""`gatehouse identity create|list|revoke` against a running server."""

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

COLUMNS = [("ID", "id"), ("NAME", "name"), ("TENANT", "tenant"), ("ROLES", "roles"), ("STATE", "state")]


@click.group()
def identity() -> None:
    """Create, list and revoke identities (API keys)."""


@identity.command("create")
@click.argument("name")
@click.option(
    "--for-tenant",
    "for_tenant",
    default=None,
    help="tenant the new identity belongs to (default: --tenant, else `default`)",
)
@click.option("--role", "roles", multiple=True, default=("agent",), show_default=True)
@click.option("--topic", "topics", multiple=True, help="topic glob in scope (repeatable; default **)")
@click.option("--capability", "capabilities", multiple=True, help="capability in scope (default *)")
@click.option(
    "--adapter",
    "adapters",
    multiple=True,
    help="adapter:action glob the identity may take steps on, e.g. bank:* (repeatable; default none)",
)
@client_options
def create(
    client: Client,
    tenant: str | None,
    name: str,
    for_tenant: str | None,
    roles: tuple[str, ...],
    topics: tuple[str, ...],
    capabilities: tuple[str, ...],
    adapters: tuple[str, ...],
) -> None:
    """Create an identity; its API key is printed once."""
    emit(
        client.create_identity(
            name,
            # `--tenant acme` alone means "in acme": the new identity's tenant and the acting one
            # agree, and a key that may not act in acme is refused (403), never ignored.
            tenant=for_tenant or tenant or "default",
            roles=list(roles),
            topics=list(topics) or ["**"],
            capabilities=list(capabilities) or ["*"],
            adapters=list(adapters),
        )
    )


@identity.command("list")
@limit_option(200)
@cursor_option
@json_option
@client_options
def list_(client: Client, limit: int, cursor: str | None, as_json: bool) -> None:
    """List identities (never their keys), oldest first, one page at a time (`--cursor`); a
    global admin with --tenant sees that tenant's."""
    page = client.request("GET", "/api/v1/identities", limit=limit, cursor=cursor)
    found = page["identities"]
    if as_json:
        emit(found)  # a list, as before paging: the next cursor goes to stderr
    else:
        rows = [{**i, "state": "revoked" if i["revoked"] else "active"} for i in found]
        table(rows, COLUMNS, empty="no identities")
    more(page)


@identity.command("revoke")
@click.argument("identity_id")
@client_options
def revoke(client: Client, identity_id: str) -> None:
    """Revoke an identity's key at once."""
    emit(client.revoke_identity(identity_id))

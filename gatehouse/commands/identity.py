"""`gatehouse identity create|list|revoke` against a running server."""

from __future__ import annotations

import click

from gatehouse.client import Client
from gatehouse.commands._http import client_options, emit


@click.group()
def identity() -> None:
    """Create, list and revoke identities (API keys)."""


@identity.command("create")
@click.argument("name")
@click.option(
    "--for-tenant",
    "for_tenant",
    default="default",
    show_default=True,
    help="tenant the new identity belongs to",
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
    name: str,
    for_tenant: str,
    roles: tuple[str, ...],
    topics: tuple[str, ...],
    capabilities: tuple[str, ...],
    adapters: tuple[str, ...],
) -> None:
    """Create an identity; its API key is printed once."""
    emit(
        client.create_identity(
            name,
            tenant=for_tenant,
            roles=list(roles),
            topics=list(topics) or ["**"],
            capabilities=list(capabilities) or ["*"],
            adapters=list(adapters),
        )
    )


@identity.command("list")
@client_options
def list_(client: Client) -> None:
    """List identities (never their keys)."""
    for i in client.identities():
        state = "revoked" if i["revoked"] else "active"
        click.echo(f"{i['id']}  {i['name']:<20} {i['tenant']:<12} {','.join(i['roles']):<20} {state}")


@identity.command("revoke")
@click.argument("identity_id")
@client_options
def revoke(client: Client, identity_id: str) -> None:
    """Revoke an identity's key at once."""
    emit(client.revoke_identity(identity_id))

"""`gatehouse secret set|list|delete`: secrets the broker injects into adapters' requests."""

from __future__ import annotations

import sys
from urllib.parse import quote

import click

from gatehouse.client import Client
from gatehouse.commands._http import client_options, emit


@click.group()
def secret() -> None:
    """Store secrets for adapters (admin). Values are never shown again, by any command or route."""


def _read_value() -> str:
    if sys.stdin.isatty():
        return str(click.prompt("value", hide_input=True, confirmation_prompt=True))
    value = sys.stdin.read()
    # `echo x | gatehouse secret set NAME` adds one line break that is not part of the secret.
    return value[:-2] if value.endswith("\r\n") else value[:-1] if value.endswith("\n") else value


@secret.command("set")
@click.argument("name")
@client_options
def set_(client: Client, name: str) -> None:
    """Store the secret NAME, its value read from standard input (never an argument: arguments
    end up in shell history and process lists). Replaces a secret of that name.

    \b
      printf %s "$TOKEN" | gatehouse secret set github_token
      gatehouse secret set github_token < token.txt
    """
    value = _read_value()
    if not value:
        raise click.UsageError("the value on standard input is empty")
    emit(client.request("PUT", f"/api/v1/secrets/{quote(name, safe='')}", json={"value": value}))


@secret.command("list")
@client_options
def list_(client: Client) -> None:
    """List the tenant's secrets: names and times, never values."""
    found = client.request("GET", "/api/v1/secrets")["secrets"]
    if not found:
        click.echo("no secrets")
        return
    click.echo(f"{'NAME':<40} {'CREATED':<26} UPDATED")
    for s in found:
        click.echo(f"{s['name']:<40} {s['created_at']:<26} {s['updated_at']}")


@secret.command("delete")
@click.argument("name")
@client_options
def delete(client: Client, name: str) -> None:
    """Delete the secret NAME."""
    emit(client.request("DELETE", f"/api/v1/secrets/{quote(name, safe='')}"))

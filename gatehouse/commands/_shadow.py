"""`gatehouse policy shadow set|show|diff|clear`: a candidate bundle judged beside the live one on
a running server, never enforced (docs/policy-rollout.md). Registered on the `policy` group."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from gatehouse.client import Client
from gatehouse.commands._http import client_options, emit

__all__ = ["shadow"]


@click.group()
def shadow() -> None:
    """Run a candidate bundle beside the live one on real traffic, never enforced."""


@shadow.command("set")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@client_options
def set_(client: Client, file: Path) -> None:
    """Install FILE (a bundle, or a signed envelope) as the shadow bundle (admin)."""
    from gatehouse.control.installer import read_policy_file

    text, signature = read_policy_file(file)
    result = client.put_shadow_policy(text, signature)
    click.echo(
        f"shadow {result['name']} snapshot {result['snapshot']} installed beside live "
        f"{result['live_snapshot']} (never enforced)"
    )


@shadow.command("show")
@client_options
@click.option("--json", "as_json", is_flag=True, help="print the answer as JSON")
def show(client: Client, as_json: bool) -> None:
    """The shadow bundle: name, snapshot, rules, who installed it."""
    result = client.shadow_policy()
    if as_json:
        emit(result)
        return
    click.echo(f"shadow: {result['name']} snapshot {result['snapshot']} ({result['rules']} rules)")
    click.echo(f"live:   {result['live_snapshot']}")
    click.echo(f"installed {result['installed_at']} by {result['installed_by']}, signed: {result['signed']}")


def _row(d: dict[str, Any]) -> str:
    live, sh = d["live"], d["shadow"]
    return (
        f"{d['decision_id']}  {d['stage']:<8}  {d.get('subject') or '-'}  "
        f"{live['decision']} ({live['rule_id']}) -> {sh['decision']} ({sh['rule_id']})"
    )


@shadow.command("diff")
@client_options
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print the answer as JSON")
def diff(client: Client, limit: int, as_json: bool) -> None:
    """The decisions the shadow bundle disagreed on, newest first (live -> shadow)."""
    result = client.shadow_diff(limit=limit)
    if as_json:
        emit(result)
        return
    for d in result["disagreements"]:
        click.echo(_row(d))
    click.echo(f"{result['count']} disagreements shown (shadow {result['shadow_snapshot']})")


@shadow.command("clear")
@client_options
def clear(client: Client) -> None:
    """Remove the shadow bundle: nothing is compared any more (admin)."""
    client.delete_shadow_policy()
    click.echo("shadow bundle removed")

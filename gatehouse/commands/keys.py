"""`gatehouse keys generate`: an Ed25519 key pair for signing bundles."""

from __future__ import annotations

from pathlib import Path

import click

from gatehouse.crypto import write_keypair


@click.group()
def keys() -> None:
    """Manage signing keys."""


@keys.command("generate")
@click.option(
    "--out",
    "prefix",
    required=True,
    type=click.Path(path_type=Path),
    help="writes PREFIX.key (private, mode 0600) and PREFIX.pub",
)
@click.option("--force", is_flag=True, help="overwrite existing files")
def generate(prefix: Path, force: bool) -> None:
    """Generate an Ed25519 key pair; prints its key id."""
    for suffix in (".key", ".pub"):
        path = Path(f"{prefix}{suffix}")
        if path.exists() and not force:
            raise click.ClickException(f"`{path}` exists (use --force to overwrite)")
    key = write_keypair(prefix)
    click.echo(f"key_id: {key.key_id}")
    click.echo(f"private: {prefix}.key (mode 0600; keep it off the server)")
    click.echo(f"public:  {prefix}.pub (give it to `gatehouse serve --trust-key`)")

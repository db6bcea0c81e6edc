"""`gatehouse policy sign` and `gatehouse policy push` (registered on the `policy` group)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from gatehouse.commands._options import key_option, url_option
from gatehouse.crypto import KeyError_, SigningKey
from gatehouse.errors import PolicyError
from gatehouse.policy import load
from gatehouse.policy._durations import parse_duration


@click.command("sign")
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--key", "key_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--serial",
    required=True,
    type=click.IntRange(min=0),
    help="must grow with every bundle you sign (rollback protection)",
)
@click.option("--expires", default=None, help="validity, e.g. 30d (default: no expiry)")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path))
def sign(bundle: Path, key_path: Path, serial: int, expires: str | None, out: Path) -> None:
    """Sign BUNDLE.yaml into a signed envelope (the body of PUT /api/v1/policy)."""
    from gatehouse.kernel.bundles import sign_bundle

    text = bundle.read_text(encoding="utf-8")
    try:
        policy = load(text)
    except PolicyError as exc:
        click.echo(f"error: {bundle}: {exc}", err=True)
        sys.exit(2)
    try:
        key = SigningKey.load(key_path)
        expires_in = parse_duration(expires) if expires else None
    except (KeyError_, ValueError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    envelope = sign_bundle(text, key, name=policy.name, serial=serial, now=time.time(), expires_in=expires_in)
    out.write_text(json.dumps(envelope, indent=2) + "\n", encoding="utf-8")
    click.echo(f"signed {policy.name} serial {serial} with key {key.key_id} -> {out}")


@click.command("push")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@url_option
@key_option(help="an admin API key")
def push(file: Path, url: str, key: str) -> None:
    """Install FILE (a bundle, or a signed envelope) on a running server."""
    from gatehouse.client import ApiError, Client
    from gatehouse.control.installer import read_policy_file

    text, signature = read_policy_file(file)
    with Client(url, api_key=key) as client:
        try:
            result = client.put_policy(text, signature)
        except ApiError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
    click.echo(f"installed {result['name']} snapshot {result['snapshot']} serial {result['serial']}")

"""`gatehouse redteam --url URL`: attack a live deployment along the ten attack paths."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import httpx

from gatehouse.commands._options import key_option, url_option
from gatehouse.redteam import DEFAULT_TARGET_PORT, PATHS, Finding, RangeError, run
from gatehouse.redteam.report import as_json, as_junit, as_table


@click.command()
@url_option
@key_option(required=False, help="an admin API key: the red team makes and removes its own identities")
@click.option(
    "--target-port",
    type=click.IntRange(1, 65535),
    default=DEFAULT_TARGET_PORT,
    show_default=True,
    help="loopback port of the red team's target service; the bundle's rt_web/rt_mcp egress names it",
)
@click.option("--json", "json_file", type=click.Path(dir_okay=False, path_type=Path),
              help="write the JSON report here (`-` for standard output, instead of the table)")  # fmt: skip
@click.option("--junit", "junit_file", type=click.Path(dir_okay=False, path_type=Path),
              help="write a JUnit XML report here")  # fmt: skip
@click.option("--path", "paths", multiple=True, type=click.Choice(list(PATHS)),
              help="run only the scenarios of this attack path (repeatable)")  # fmt: skip
@click.option(
    "--verbose", "-v", is_flag=True, help="list every scenario with its evidence, not only failures"
)
@click.option("--timeout", type=float, default=10.0, show_default=True, help="seconds per HTTP request")
def redteam(
    url: str,
    key: str | None,
    target_port: int,
    json_file: Path | None,
    junit_file: Path | None,
    paths: tuple[str, ...],
    verbose: bool,
    timeout: float,
) -> None:
    """Attack the deployment at --url along the ten attack paths and report what got through.

    It makes a throw-away tenant with its own identities, starts a target service on
    127.0.0.1:--target-port and an attacker endpoint on a free port, runs every scenario
    through the public routes and the MCP gateway, and removes what it made. Exit 0 when every
    scenario was blocked, 1 when any got through (or could not run), 2 when the range cannot
    be set up (a wrong key, a bundle without the red team's adapters), 3 when the server cannot
    be reached.

    \b
      GATEHOUSE_API_KEY=$ADMIN gatehouse redteam --url http://127.0.0.1:8081
      gatehouse redteam --json report.json --junit redteam.xml
    """
    if not key:
        click.echo("error: no API key: set $GATEHOUSE_API_KEY to an admin key (or pass --key)", err=True)
        sys.exit(2)
    to_stdout_json = json_file is not None and str(json_file) == "-"

    def progress(f: Finding) -> None:
        if not to_stdout_json and sys.stderr.isatty():
            click.echo(f"  {f.status:<11} {f.scenario.id}", err=True)

    try:
        result = run(url, key, target_port=target_port, paths=paths, progress=progress, timeout=timeout)
    except RangeError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except httpx.HTTPError as exc:
        click.echo(f"error: cannot reach {url}: {exc}", err=True)
        sys.exit(3)
    except OSError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    if to_stdout_json:
        click.echo(as_json(result))
    else:
        click.echo(as_table(result, verbose=verbose))
        if json_file is not None:
            json_file.write_text(as_json(result) + "\n")
    if junit_file is not None:
        junit_file.write_text(as_junit(result))
    sys.exit(0 if result.all_blocked else 1)

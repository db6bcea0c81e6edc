"""`gatehouse incident status|contain|list|lift`: detect, and kill switches during an incident."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
import httpx

from gatehouse.client import ApiError, Client
from gatehouse.commands._http import cursor_option, emit, limit_option, more
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


@incident.command("status")
@click.option("--window", default="5m", show_default=True, help="the recent window (s, m, h)")
@click.option("--baseline", default="1h", show_default=True, help="the baseline before the window")
@click.option(
    "--threshold",
    default=3.0,
    show_default=True,
    help="flag a signal whose rate is this many times its baseline's",
)
@click.option("--json", "as_json", is_flag=True, help="print the server's answer as JSON")
@_server_options
def status(url: str, key: str, window: str, baseline: str, threshold: float, as_json: bool) -> None:
    """What on call needs first (global admin): the containments in force, then one line per
    incident signal (denials, step denials, forged approvals, egress denials, quarantines,
    fail-open) with its count in the last WINDOW, its rate against the BASELINE before it, and
    `ALERT` where it is at least THRESHOLD times the baseline's (or new) and past its minimum
    count. Exit 0 either way; `--json` for scripts.

    \b
      gatehouse incident status
      gatehouse incident status --window 15m --baseline 6h --json
    """

    def show(c: Client) -> None:
        found = c.incident_status(window=window, baseline=baseline, threshold=threshold)
        if as_json:
            click.echo(json.dumps(found, indent=2))
            return
        held = found["containments"]
        click.echo(f"containments in force: {len(held) or 'none'}")
        for i in held:
            click.echo(f"  {i['id']}  {i['kind']} {i['target']}  since {i['created_at']}  {i['reason']}")
        w, b = found["window_seconds"], found["baseline_seconds"]
        click.echo(f"signals: last {w}s against the {b}s before (threshold x{found['threshold']:g})")
        click.echo(f"  {'SIGNAL':<16} {'RECENT':>6} {'/MIN':>8} {'BASE/MIN':>9} {'RATIO':>7}  FLAG")
        for s in found["signals"]:
            ratio = (
                "new"
                if s["ratio"] is None and s["recent"]
                else "-"
                if s["ratio"] is None
                else f"{s['ratio']:g}"
            )
            flag = "ALERT" if s["flagged"] else "ok"
            click.echo(
                f"  {s['signal']:<16} {s['recent']:>6} {s['recent_per_min']:>8g} "
                f"{s['baseline_per_min']:>9g} {ratio:>7}  {flag}"
            )
        click.echo(f"flagged: {', '.join(found['flagged']) or 'none'}")

    _run(show, url, key)


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
@limit_option(200)
@cursor_option
@_server_options
def list_(url: str, key: str, show_all: bool, limit: int, cursor: str | None) -> None:
    """List the containments in force (with --all, lifted ones too), oldest first; one page at
    a time (`--cursor`)."""

    def show(c: Client) -> None:
        page = c.request(
            "GET", "/api/v1/incidents", active=str(not show_all).lower(), limit=limit, cursor=cursor
        )
        found = page["incidents"]
        if not found:
            click.echo("no containments" if show_all else "no containments in force")
        else:
            click.echo(f"{'ID':<35}  {'KIND':<8} {'TARGET':<24} {'STATE':<10} REASON")
        for i in found:
            state = "active" if i["active"] else f"lifted {i['lifted_at']}"
            click.echo(f"{i['id']:<35}  {i['kind']:<8} {i['target']:<24} {state:<10} {i['reason']}")
        more(page)

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

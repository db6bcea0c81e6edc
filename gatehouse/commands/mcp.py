"""`gatehouse mcp proxy|tools|pin`: the MCP gateway from the command line."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar
from urllib.parse import quote

import click
import httpx

from gatehouse.client import ApiError, Client
from gatehouse.commands._http import emit
from gatehouse.commands._options import key_option, url_option

F = TypeVar("F", bound=Callable[..., Any])


def _server_options(fn: F) -> F:
    return url_option(key_option(help="an admin API key")(fn))


@click.group()
def mcp() -> None:
    """Reach the MCP gateway: a stdio bridge for MCP clients, and tool pins for admins."""


@mcp.command("proxy")
@click.option(
    "--url",
    envvar="GATEHOUSE_URL",
    default="http://127.0.0.1:8081",
    show_default=True,
    help="the Gatehouse server (or the full `/mcp/ADAPTER` endpoint)",
)
@click.option("--adapter", required=True, help="the `kind: mcp` adapter to reach")
@click.option(
    "--session",
    help="a Gatehouse session id (X-Gatehouse-Session) to share history and provenance with "
    "other connections of the same agent, e.g. one proxy per adapter",
)
def proxy(url: str, adapter: str, session: str | None) -> None:
    """A stdio MCP server that forwards everything to `/mcp/ADAPTER`, for MCP clients that
    launch a command. The API key comes from $GATEHOUSE_API_KEY (never from argv, which
    other users of the machine can read).

    \b
      GATEHOUSE_API_KEY=ghk_... gatehouse mcp proxy --url http://127.0.0.1:8081 --adapter git
    """
    import anyio

    from gatehouse.mcp.proxy import run_proxy

    key = _env_key()
    endpoint = _endpoint(url, adapter)
    try:
        anyio.run(partial(run_proxy, endpoint, key, session=session))
    except KeyboardInterrupt:
        pass
    except Exception as exc:  # one line on stderr, never a traceback on the client's console
        while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
            exc = exc.exceptions[0]  # type: ignore[assignment]
        click.echo(f"error: MCP proxy to {endpoint} stopped: {type(exc).__name__}: {exc}", err=True)
        sys.exit(3)


def _env_key() -> str:
    import os

    key = os.environ.get("GATEHOUSE_API_KEY", "").strip()
    if not key:
        click.echo("error: set GATEHOUSE_API_KEY to the API key of the agent's identity", err=True)
        sys.exit(2)
    return key


def _endpoint(url: str, adapter: str) -> str:
    url = url.rstrip("/")
    suffix = f"/mcp/{quote(adapter, safe='')}"
    return url if url.endswith(suffix) else url + suffix


@mcp.command("tools")
@click.argument("adapter")
@_server_options
def tools(url: str, key: str, adapter: str) -> None:
    """The tools ADAPTER's upstream offers now, each listed or withheld (and why), with the
    digest that `gatehouse mcp pin --digest` takes (admin)."""

    def show(c: Client) -> None:
        found = c.request("GET", f"/api/v1/adapters/{quote(adapter, safe='')}/tools")
        rows = found.get("tools", [])
        if not rows:
            click.echo(f"adapter `{adapter}` offers no tools")
            return
        click.echo(f"{'TOOL':<28} {'STATUS':<9} {'REASON':<26} DIGEST")
        for t in rows:
            reason = t.get("reason") or "-"
            click.echo(f"{t['name']!s:<28} {t['status']:<9} {reason:<26} {t['digest']}")

    _run(show, url, key)


@mcp.command("pin")
@click.argument("adapter")
@click.argument("tool")
@click.option(
    "--digest",
    help="pin only if the upstream still offers this definition (the digest you reviewed)",
)
@_server_options
def pin(url: str, key: str, adapter: str, tool: str, digest: str | None) -> None:
    """Pin the definition of TOOL that ADAPTER's upstream offers now, listing it again after a
    change or a flag withheld it (admin). Prints the pin.

    \b
      gatehouse mcp tools notes
      gatehouse mcp pin notes notes_search --digest 3f1c...
    """
    body: dict[str, Any] = {} if digest is None else {"digest": digest}
    path = f"/api/v1/adapters/{quote(adapter, safe='')}/tools/{quote(tool, safe='')}/pin"
    _run(lambda c: emit(c.request("POST", path, json=body)), url, key)


def _run(action: Callable[[Client], None], url: str, key: str) -> None:
    client = Client(url, api_key=key, timeout=60.0)
    try:
        action(client)
    except ApiError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1 if exc.status < 500 else 3)
    except httpx.HTTPError as exc:
        click.echo(f"error: cannot reach {url}: {exc}", err=True)
        sys.exit(3)
    finally:
        client.close()

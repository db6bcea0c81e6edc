"""Shared options for commands that talk to a running server.

Every such command takes the server the same way: `--url` (else `$GATEHOUSE_URL`, else
http://127.0.0.1:8081) and `--key` (else `$GATEHOUSE_API_KEY`; the older `$GATEHOUSE_KEY` and
`$GATEHOUSE_ADMIN_KEY` are still read, in that order). `--tenant` (else `$GATEHOUSE_TENANT`) is
the tenant to act in, sent as `X-Tenant-ID`: a global admin's way into one tenant; any other key
naming a tenant not its own is refused by the server (403 `tenant_mismatch`), never ignored.

Errors are one line on stderr, never a traceback: `error: 404 job_not_found: no job ...` and
exit 1 for a refusal, `error: cannot reach URL: ...` and exit 3 when the server is down or
answers 5xx (`gatehouse.cli` catches what a command lets through).
"""

from __future__ import annotations

import functools
import inspect
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import click
import httpx

from gatehouse.client import ApiError, Client
from gatehouse.commands._options import DEFAULT_URL, KEY_ENV, URL_ENV, json_option, key_option, url_option

__all__ = [
    "DEFAULT_URL",
    "KEY_ENV",
    "URL_ENV",
    "client_options",
    "cursor_option",
    "emit",
    "fail",
    "json_option",
    "key_option",
    "limit_option",
    "more",
    "table",
    "url_option",
]


F = TypeVar("F", bound=Callable[..., Any])


def client_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    @url_option
    @key_option()
    @click.option(
        "--tenant",
        envvar="GATEHOUSE_TENANT",
        default=None,
        help="act in this tenant (X-Tenant-ID; a global admin's key), else $GATEHOUSE_TENANT",
    )
    @functools.wraps(fn)
    def wrapper(url: str, key: str, tenant: str | None, **kw: Any) -> Any:
        client = Client(url, api_key=key, tenant=tenant)
        try:
            if "tenant" in inspect.signature(fn).parameters:
                kw["tenant"] = tenant
            return fn(client=client, **kw)
        except (ApiError, httpx.HTTPError) as exc:
            fail(exc, url)
        finally:
            client.close()

    return wrapper


def fail(exc: Exception, url: str | None = None) -> None:
    """One line on stderr and the exit code for `exc` (an `ApiError` or an httpx error)."""
    if isinstance(exc, ApiError):
        click.echo(f"error: {exc}", err=True)
        sys.exit(1 if exc.status < 500 else 3)
    request = _request_of(exc)
    where = f" {url}" if url else (f" {request.url}" if request is not None else "")
    # One line, not a traceback: the usual cause is a server that is not running.
    reason = str(exc) or type(exc).__name__
    click.echo(f"error: cannot reach{where}: {reason}", err=True)
    sys.exit(3)


def _request_of(exc: Exception) -> Any:
    try:
        return getattr(exc, "request", None)
    except RuntimeError:  # httpx raises when an error was built without its request
        return None


def limit_option(default: int) -> Callable[[F], F]:
    """`--limit`: rows per page, as the listing routes take it (1 to 500)."""
    return click.option(
        "--limit", type=click.IntRange(1, 500), default=default, show_default=True, help="rows per page"
    )


cursor_option = click.option("--cursor", help="the `next_cursor` of the previous page")


def more(page: dict[str, Any]) -> None:
    """Say how to ask for the next page, on stderr so `--json` output stays one document."""
    if page.get("next_cursor"):
        click.echo(f"more: --cursor {page['next_cursor']}", err=True)


def emit(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def table(rows: Iterable[dict[str, Any]], columns: Sequence[tuple[str, str]], *, empty: str) -> None:
    """Rows as a table with a header line; `columns` are (header, key). `empty` when none."""
    rows = list(rows)
    if not rows:
        click.echo(empty)
        return
    cells = [[_cell(r.get(key)) for _, key in columns] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, (h, _) in enumerate(columns)]
    line = "  ".join(h.ljust(w) for (h, _), w in zip(columns, widths, strict=True))
    click.echo(line.rstrip())
    for c in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return ",".join(map(str, value)) or "-"
    text = str(value).replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "..."

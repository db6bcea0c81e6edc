"""Shared options for commands that talk to a running server."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any

import click
import httpx

from gatehouse.client import ApiError, Client

__all__ = ["client_options", "emit"]


def client_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    @click.option("--url", envvar="GATEHOUSE_URL", default="http://127.0.0.1:8081", show_default=True)
    @click.option(
        "--key",
        envvar=["GATEHOUSE_KEY", "GATEHOUSE_ADMIN_KEY", "GATEHOUSE_API_KEY"],
        required=True,
        help="API key (or GATEHOUSE_KEY)",
    )
    @click.option("--tenant", envvar="GATEHOUSE_TENANT", default=None)
    @functools.wraps(fn)
    def wrapper(url: str, key: str, tenant: str | None, **kw: Any) -> Any:
        client = Client(url, api_key=key, tenant=tenant)
        try:
            return fn(client=client, **kw)
        except ApiError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1 if exc.status < 500 else 3)
        except httpx.HTTPError as exc:
            # One line, not a traceback: the usual cause is a server that is not running.
            click.echo(f"error: cannot reach {url}: {exc}", err=True)
            sys.exit(3)
        finally:
            client.close()

    return wrapper


def emit(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))

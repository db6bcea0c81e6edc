"""The options every command that talks to a server takes, the same way (click only, so that
`gatehouse policy check` does not import the HTTP client). See `_http.py` for what they mean."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

__all__ = ["DEFAULT_URL", "KEY_ENV", "URL_ENV", "json_option", "key_option", "url_option"]

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_URL = "http://127.0.0.1:8081"
URL_ENV = "GATEHOUSE_URL"
KEY_ENV = "GATEHOUSE_API_KEY"
_KEY_ENVS = [KEY_ENV, "GATEHOUSE_KEY", "GATEHOUSE_ADMIN_KEY"]


def url_option(fn: F) -> F:
    return click.option(
        "--url",
        envvar=URL_ENV,
        default=DEFAULT_URL,
        show_default=True,
        help=f"the Gatehouse server (else ${URL_ENV})",
    )(fn)


def key_option(*, required: bool = True, param: str = "key", help: str = "API key") -> Callable[[F], F]:
    def decorate(fn: F) -> F:
        return click.option(
            "--key", param, envvar=_KEY_ENVS, required=required, help=f"{help} (else ${KEY_ENV})"
        )(fn)

    return decorate


def json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")(fn)

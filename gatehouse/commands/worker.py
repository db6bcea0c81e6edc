"""`gatehouse worker`: an external worker process that leases jobs and runs a handler per topic."""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from typing import Any

import click

from gatehouse.client import ApiError, Client
from gatehouse.commands._options import key_option, url_option
from gatehouse.domain.failures import handler_failed
from gatehouse.policy import compile_glob

log = logging.getLogger("gatehouse.worker")
Handler = Callable[[dict[str, Any]], Any]


def _load_handler(spec: str) -> Handler:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise click.BadParameter(f"handler `{spec}` must look like `package.module:function`")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise click.BadParameter(f"cannot load handler `{spec}`: {exc}") from None
    if not callable(fn):
        raise click.BadParameter(f"handler `{spec}` is not callable")
    return fn  # type: ignore[no-any-return]


def _parse_handlers(specs: tuple[str, ...]) -> list[tuple[str, Handler]]:
    """`GLOB=module:fn` pairs, or a bare `module:fn` for every topic (`**`)."""
    out = []
    for spec in specs:
        glob, sep, target = spec.partition("=")
        if not sep:
            glob, target = "**", spec
        compile_glob(glob)
        out.append((glob, _load_handler(target)))
    return out


def echo(job: dict[str, Any]) -> dict[str, Any]:
    """The default handler: echo the prompt."""
    return {"echo": job.get("prompt", ""), "topic": job.get("topic")}


@click.command()
@url_option
@key_option(help="a worker's API key")
@click.option("--topics", "topics", multiple=True, required=True, help="topic glob to lease (repeatable)")
@click.option(
    "--handler",
    "handlers",
    multiple=True,
    help="`GLOB=package.module:function` or `package.module:function` (repeatable); "
    "default echoes the prompt",
)
@click.option("--max-jobs", default=4, show_default=True)
@click.option("--lease-seconds", default=60, show_default=True)
@click.option("--once", is_flag=True, help="exit when a lease comes back empty")
def worker(
    url: str,
    key: str,
    topics: tuple[str, ...],
    handlers: tuple[str, ...],
    max_jobs: int,
    lease_seconds: int,
    once: bool,
) -> None:
    """Lease jobs for TOPICS and run the matching handler; report each result."""
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    table = _parse_handlers(handlers) or [("**", echo)]
    routes = [(compile_glob(g), fn) for g, fn in table]
    client = Client(url, api_key=key)
    topic_list = [t for spec in topics for t in spec.split(",") if t]
    click.echo(f"gatehouse worker: leasing {', '.join(topic_list)} from {url}", err=True)
    while True:
        try:
            jobs = client.lease(
                topic_list,
                max_jobs=max_jobs,
                lease_seconds=lease_seconds,
                wait_seconds=0 if once else 5,
            )
        except (ApiError, OSError) as exc:
            log.warning("lease failed: %s", exc)
            if once:
                raise SystemExit(1) from None
            time.sleep(1.0)
            continue
        if not jobs and once:
            return
        for job in jobs:
            fn = next((f for g, f in routes if g.matches(job["topic"])), None)
            try:
                if fn is None:
                    raise LookupError(f"no handler for topic `{job['topic']}`")
                client.heartbeat(job["job_id"], lease_seconds=lease_seconds)
                output = fn(job)
                client.result(job["job_id"], status="succeeded", output=output)
                log.info("job %s succeeded", job["job_id"])
            except ApiError as exc:
                log.warning("job %s: server refused: %s", job["job_id"], exc)
            except Exception as exc:
                # The agent reads the result: it gets an error id, this log gets the traceback.
                failure = handler_failed(log, job["job_id"], exc)
                try:
                    client.result(
                        job["job_id"], status="failed", error=failure.message, output=failure.output()
                    )
                except ApiError as report:
                    log.warning("could not report failure of %s: %s", job["job_id"], report)

"""`gatehouse worker`: an external worker process that leases jobs and runs a handler per topic.

With `--isolate` each job's handler runs in a fresh sandbox (`gatehouse.sandbox.jobs`): the
`--isolate-*` options declare what it may see and reach, exactly as an adapter's `sandbox:`
does, and are checked the same way. A worker that cannot sandbox does not start (fail closed).
"""

from __future__ import annotations

import importlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import click

from gatehouse.client import ApiError, Client
from gatehouse.commands._options import key_option, url_option
from gatehouse.config import Settings
from gatehouse.domain.failures import HandlerFailure, handler_failed, sandbox_failed
from gatehouse.errors import PolicyError
from gatehouse.policy import compile_glob, read_sandbox
from gatehouse.policy.catalog import EgressEntry, EgressError, parse_egress
from gatehouse.sandbox.jobs import JobSandbox
from gatehouse.sandbox.plan import SandboxError

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


def _parse_handlers(specs: tuple[str, ...], jail: JobSandbox | None = None) -> list[tuple[str, Handler]]:
    """`GLOB=module:fn` pairs, or a bare `module:fn` for every topic (`**`). With `jail`, each
    handler is loaded once in a sandbox to check it, and runs in a fresh one per job."""
    out = []
    for spec in specs:
        glob, sep, target = spec.partition("=")
        if not sep:
            glob, target = "**", spec
        compile_glob(glob)
        out.append((glob, _load_handler(target) if jail is None else _isolated(jail, target)))
    return out


class _Stopped(Exception):
    """The sandbox ended an isolated handler (a limit, or it could not run it)."""

    def __init__(self, event: dict[str, Any]) -> None:
        super().__init__(json.dumps(event))
        self.event = event


class _Raised(Exception):
    """An isolated handler raised: its message and traceback, as the sandbox reported them."""


def _isolated(jail: JobSandbox, spec: str) -> Handler:
    try:
        checked = jail.run(spec, check=True)
    except SandboxError as exc:
        raise click.BadParameter(f"cannot isolate handler `{spec}`: {exc.message}") from None
    if not checked.ok:
        why = checked.error or json.dumps(checked.killed)
        raise click.BadParameter(f"cannot load handler `{spec}` in its sandbox: {why}")

    def run(job: dict[str, Any]) -> Any:
        outcome = jail.run(spec, job)
        if outcome.killed is not None:
            raise _Stopped(outcome.killed)
        if outcome.error is not None:
            raise _Raised(f"{outcome.error}\n--- in the sandbox ---\n{outcome.traceback}")
        return outcome.output

    return run


def _isolation(
    *,
    read: tuple[str, ...],
    write: tuple[str, ...],
    network: str,
    egress: tuple[str, ...],
    memory: str | None,
    cpu_seconds: int | None,
    processes: int | None,
    wall_seconds: int | None,
) -> JobSandbox:
    """The `--isolate-*` options as an adapter's `sandbox:`, checked by the same loader."""
    body: dict[str, Any] = {"network": network}
    named = {"read": list(read), "write": list(write), "memory": memory, "cpu_seconds": cpu_seconds,
             "processes": processes, "wall_seconds": wall_seconds}  # fmt: skip
    for key, value in named.items():
        if value is not None and value != []:
            body[key] = value
    try:
        spec = read_sandbox(json.dumps(body), "the worker's handlers")
        entries: list[EgressEntry] = [parse_egress(e) for e in egress]
    except PolicyError as exc:
        raise click.UsageError(exc.message.replace("`sandbox.", "`--isolate-")) from None
    except EgressError as exc:
        raise click.UsageError(str(exc)) from None
    if network == "egress" and not entries:
        raise click.UsageError("`--isolate-network egress` needs `--isolate-egress` (where handlers may go)")
    if entries and network != "egress":
        raise click.UsageError("`--isolate-egress` needs `--isolate-network egress`")
    settings = Settings.from_env()
    jail = JobSandbox(
        spec, egress=entries, bwrap=settings.sandbox_bwrap, forbidden=settings.sandbox_forbidden
    )
    why = jail.available()
    if why is not None:
        jail.close()
        raise click.ClickException(f"cannot isolate handlers: {why}")
    return jail


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
@click.option(
    "--isolate",
    is_flag=True,
    help="run each job's handler in a fresh sandbox (bubblewrap): no network, nothing of the host "
    "but the interpreter, the handler's module and the paths declared below; refuses to start "
    "where it cannot",
)
@click.option("--isolate-read", "isolate_read", multiple=True, metavar="PATH",
              help="with --isolate: a host path handlers may read (repeatable)")  # fmt: skip
@click.option("--isolate-write", "isolate_write", multiple=True, metavar="PATH",
              help="with --isolate: a host path handlers may write (repeatable)")  # fmt: skip
@click.option("--isolate-network", type=click.Choice(["none", "egress"]), default="none", show_default=True,
              help="with --isolate: `egress` reaches only --isolate-egress (a proxy)")  # fmt: skip
@click.option("--isolate-egress", "isolate_egress", multiple=True, metavar="DEST",
              help="with --isolate-network egress: `scheme://host[:port]` (repeatable)")  # fmt: skip
@click.option("--isolate-memory", metavar="SIZE", help="with --isolate: address space per process [512Mi]")
@click.option("--isolate-cpu-seconds", type=int, help="with --isolate: CPU seconds per process [60]")
@click.option("--isolate-processes", type=int, help="with --isolate: tasks in the sandbox [64]")
@click.option("--isolate-wall-seconds", type=int, help="with --isolate: wall-clock bound per job [300]")
def worker(
    url: str,
    key: str,
    topics: tuple[str, ...],
    handlers: tuple[str, ...],
    max_jobs: int,
    lease_seconds: int,
    once: bool,
    isolate: bool,
    isolate_read: tuple[str, ...],
    isolate_write: tuple[str, ...],
    isolate_network: str,
    isolate_egress: tuple[str, ...],
    isolate_memory: str | None,
    isolate_cpu_seconds: int | None,
    isolate_processes: int | None,
    isolate_wall_seconds: int | None,
) -> None:
    """Lease jobs for TOPICS and run the matching handler; report each result."""
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    declared = (isolate_read or isolate_write or isolate_egress or isolate_network != "none" or isolate_memory
                or isolate_cpu_seconds or isolate_processes or isolate_wall_seconds)  # fmt: skip
    if declared and not isolate:
        # Declaring a sandbox and getting none would be the worst surprise: refuse instead.
        raise click.UsageError("the --isolate-* options need --isolate")
    jail = None
    if isolate:
        jail = _isolation(read=isolate_read, write=isolate_write, network=isolate_network,
                          egress=isolate_egress, memory=isolate_memory, cpu_seconds=isolate_cpu_seconds,
                          processes=isolate_processes, wall_seconds=isolate_wall_seconds)  # fmt: skip
    try:
        _serve(url, key, topics, _parse_handlers(handlers, jail), max_jobs, lease_seconds, once)
    finally:
        if jail is not None:
            jail.close()


class _Leases:
    """Keeps the leases of a batch alive while its jobs wait and run: a handler may take longer
    than a lease (a sandboxed one up to its wall-clock bound), and a lease that lapses hands the
    job to another worker while this one still runs it. A thread renews every unfinished job's
    lease each third of a lease, on a client of its own."""

    def __init__(self, url: str, key: str, lease_seconds: int, job_ids: Iterable[str]) -> None:
        self.client = Client(url, api_key=key)
        self.lease_seconds = lease_seconds
        self.pending = set(job_ids)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gatehouse-worker-leases", daemon=True)

    def __enter__(self) -> _Leases:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def done(self, job_id: str) -> None:
        with self._lock:
            self.pending.discard(job_id)

    def _run(self) -> None:
        while not self._stop.wait(max(self.lease_seconds / 3, 0.2)):
            with self._lock:
                waiting = sorted(self.pending)
            for job_id in waiting:
                try:
                    self.client.heartbeat(job_id, lease_seconds=self.lease_seconds)
                except (ApiError, OSError) as exc:  # lost (cancelled, contained): the result says so
                    log.warning("job %s: lease not renewed: %s", job_id, exc)
                    self.done(job_id)


def _serve(
    url: str,
    key: str,
    topics: tuple[str, ...],
    table: list[tuple[str, Handler]],
    max_jobs: int,
    lease_seconds: int,
    once: bool,
) -> None:
    # The built-in echo is Gatehouse's own code: it runs in the worker even with --isolate.
    table = table or [("**", echo)]
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
        with _Leases(url, key, lease_seconds, (j["job_id"] for j in jobs)) as leases:
            for job in jobs:
                _run_job(client, routes, job, lease_seconds)
                leases.done(job["job_id"])


def _run_job(
    client: Client, routes: list[tuple[Any, Handler]], job: dict[str, Any], lease_seconds: int
) -> None:
    """Run one leased job's handler and report its result (a failure as an error id)."""
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
        failure: HandlerFailure = (
            sandbox_failed(log, job["job_id"], exc.event)
            if isinstance(exc, _Stopped)
            else handler_failed(log, job["job_id"], exc)
        )
        try:
            client.result(job["job_id"], status="failed", error=failure.message, output=failure.output())
        except ApiError as report:
            log.warning("could not report failure of %s: %s", job["job_id"], report)

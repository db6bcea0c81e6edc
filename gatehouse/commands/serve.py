"""`gatehouse serve`: API + scheduler + built-in workers on the embedded store."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from gatehouse.config import Settings


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8081, show_default=True, type=int)
@click.option(
    "--metrics-port",
    default=9090,
    show_default=True,
    type=int,
    help="Prometheus metrics port (0 to serve metrics only on the API port)",
)
@click.option("--data-dir", default="./gatehouse-data", show_default=True, type=click.Path(path_type=Path))
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="policy bundle (YAML, or a signed envelope) to install at start and watch",
)
@click.option(
    "--watch/--no-watch",
    "watch_policy",
    default=True,
    show_default=True,
    help="reload the policy file when it changes",
)
@click.option(
    "--trust-key",
    "trust_keys",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="trusted bundle signing public key (repeatable)",
)
@click.option(
    "--kernel-socket",
    type=click.Path(path_type=Path),
    default=None,
    help="use a kernel process (`gatehouse kernel --socket`) instead of the in-process one",
)
@click.option("--kernel-deadline-ms", type=int, default=50, show_default=True)
@click.option(
    "--rate-limit-identity",
    default=None,
    help="per-identity limit RATE[/BURST] per second, 0 for none (default 200/400)",
)
@click.option(
    "--rate-limit-tenant",
    default=None,
    help="per-tenant limit RATE[/BURST] per second, 0 for none (default 1000/2000)",
)
@click.option(
    "--no-audit",
    "no_audit",
    is_flag=True,
    hidden=True,
    help="benchmarks only: write no audit entries (bench/audit_bench.py measures their cost)",
)
@click.option("--max-body-bytes", type=int, default=None, help="request body limit (default 1 MiB)")
@click.option("--builtin-workers", type=int, default=2, show_default=True)
@click.option(
    "--store",
    "store_url",
    default=None,
    help="where the store lives (default sqlite:///<data-dir>/gatehouse.db; env GATEHOUSE_STORE_URL)",
)
@click.option("--bus", "bus_url", default=None, help="the bus (default memory://; env GATEHOUSE_BUS_URL)")
@click.option(
    "--keys-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="where the signing key lives (default <data-dir>/keys); keep it outside the data "
    "directory so that whoever can write the database cannot re-sign the audit log",
)
@click.option(
    "--audit-witness",
    default=None,
    help="append every audit head, checkpoint and root to this FILE (opened O_APPEND) or POST "
    "them to this http(s) URL, outside the data directory (`audit verify --witness`)",
)
@click.option(
    "--audit-seal-interval",
    type=float,
    default=None,
    help="seconds between signatures over the moved audit heads (default 2; 0 for none)",
)
@click.option(
    "--role",
    type=click.Choice(["all", "api", "scheduler"]),
    default=None,
    help="what this replica runs: all (default), api (the API only) or scheduler (lease and "
    "approval expiry and the built-in workers; health and metrics over HTTP); env GATEHOUSE_ROLE",
)
@click.option(
    "--session-provenance-chars",
    type=int,
    default=None,
    help="characters of untrusted tool output a session keeps for from_untrusted (default and "
    "minimum 4 MiB); past it every value counts as untrusted; env GATEHOUSE_SESSION_PROVENANCE_CHARS",
)
@click.option("--log-level", default="info", show_default=True)
def serve(
    host: str,
    port: int,
    metrics_port: int,
    data_dir: Path,
    policy_file: Path | None,
    trust_keys: tuple[Path, ...],
    watch_policy: bool,
    kernel_socket: Path | None,
    kernel_deadline_ms: int,
    rate_limit_identity: str | None,
    rate_limit_tenant: str | None,
    no_audit: bool,
    max_body_bytes: int | None,
    builtin_workers: int,
    store_url: str | None,
    bus_url: str | None,
    keys_dir: Path | None,
    audit_witness: str | None,
    audit_seal_interval: float | None,
    role: str | None,
    session_provenance_chars: int | None,
    log_level: str,
) -> None:
    """Run the control plane (API, scheduler, built-in workers): on SQLite by default, or as one
    replica of many on PostgreSQL and NATS (`--store postgresql://... --bus nats://...`)."""
    import uvicorn
    from prometheus_client import start_http_server

    from gatehouse.api.app import create_app
    from gatehouse.api.protocol import BoundedHttpToolsProtocol
    from gatehouse.control.plane import ControlPlane

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from gatehouse.api.ratelimit import parse_limit
    from gatehouse.errors import BadRequest

    try:
        settings = Settings.from_env(
            host=host,
            port=port,
            # 0 is kept as 0 (no metrics port; /metrics on the API port): None would mean "the default".
            metrics_port=metrics_port,
            data_dir=data_dir,
            policy_file=policy_file,
            trust_keys=trust_keys,
            watch_policy=watch_policy,
            kernel_socket=kernel_socket,
            kernel_deadline=kernel_deadline_ms / 1000,
            rate_limit_identity=rate_limit_identity,
            rate_limit_tenant=rate_limit_tenant,
            audit=False if no_audit else None,
            max_body_bytes=max_body_bytes,
            builtin_workers=builtin_workers,
            store_url=store_url,
            bus_url=bus_url,
            keys_dir=keys_dir,
            audit_witness=audit_witness,
            audit_seal_interval=audit_seal_interval,
            role=role,
            session_provenance_chars=session_provenance_chars,
        )
        parse_limit(settings.rate_limit_identity)
        parse_limit(settings.rate_limit_tenant)
        plane = ControlPlane(settings)  # an unknown store or bus URL is refused here
    except BadRequest as exc:
        raise click.BadParameter(exc.message) from None
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=host, registry=plane.metrics.registry)
    app = create_app(settings, plane)
    from gatehouse.control.drivers import redact_url

    where = (
        f"data in {data_dir}" if settings.store_url.startswith("sqlite") else redact_url(settings.store_url)
    )
    click.echo(f"gatehouse: serving on http://{host}:{port} (role {settings.role}, {where})", err=True)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=5,
        # Request heads bounded before they are buffered (431/414; see api/protocol.py).
        http=BoundedHttpToolsProtocol,
    )

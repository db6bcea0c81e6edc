"""`gatehouse kernel --socket PATH`: run the safety kernel as its own process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import click


@click.command()
@click.option(
    "--socket",
    "socket_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Unix socket to listen on (the service connects with --kernel-socket)",
)
def kernel(socket_path: Path) -> None:
    """Serve policy decisions over a Unix socket."""
    from gatehouse.kernel.remote import serve_kernel

    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_kernel(socket_path))

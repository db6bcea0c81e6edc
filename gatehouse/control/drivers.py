"""Drivers by URL: the store and the bus a plane runs on, chosen from `Settings`.

Each scheme's driver module is imported only when its scheme is asked for, so an optional
driver's library (psycopg, nats-py) is needed only by the deployments that use it.
"""

from __future__ import annotations

from pathlib import Path

from gatehouse.audit.witness import Witness
from gatehouse.bus import Bus
from gatehouse.crypto import SigningKey
from gatehouse.errors import BadRequest
from gatehouse.store import Store

__all__ = ["BUS_SCHEMES", "STORE_SCHEMES", "open_bus", "open_store"]

STORE_SCHEMES = ("sqlite",)
BUS_SCHEMES = ("memory",)


def _scheme(url: str) -> str:
    scheme, sep, _ = url.partition("://")
    return scheme.lower() if sep else ""


def open_store(
    url: str,
    *,
    audit_key: SigningKey,
    checkpoint_every: int,
    audit: bool,
    audit_witness: Witness | None = None,
) -> Store:
    """The store `url` names (not yet opened: the plane opens it at start)."""
    scheme = _scheme(url)
    if scheme == "sqlite":
        # `sqlite:///relative/path` or `sqlite:////absolute/path`, as SQLAlchemy spells them.
        path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else ""
        if not path:
            raise BadRequest(f"bad store URL `{url}` (use sqlite:///<path>)", code="invalid_store_url")
        from gatehouse.store.sqlite import SQLiteStore

        return SQLiteStore(
            path=Path(path),
            audit_key=audit_key,
            checkpoint_every=checkpoint_every,
            audit=audit,
            audit_witness=audit_witness,
        )
    raise BadRequest(
        f"unknown store URL scheme `{scheme or url}` (one of {', '.join(STORE_SCHEMES)})",
        code="invalid_store_url",
    )


def open_bus(url: str) -> Bus:
    """The bus `url` names (not yet opened)."""
    scheme = _scheme(url)
    if scheme == "memory":
        from gatehouse.bus.memory import MemoryBus

        return MemoryBus()
    raise BadRequest(
        f"unknown bus URL scheme `{scheme or url}` (one of {', '.join(BUS_SCHEMES)})",
        code="invalid_bus_url",
    )

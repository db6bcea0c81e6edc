"""Drivers by URL: the store and the bus a plane runs on, chosen from `Settings`.

Each scheme's driver module is imported only when its scheme is asked for, so an optional
driver's library (asyncpg, nats-py: the `postgres` and `nats` extras) is needed only by the
deployments that use it.
"""

from __future__ import annotations

from pathlib import Path

from gatehouse.audit.witness import Witness
from gatehouse.bus import Bus
from gatehouse.crypto import SigningKey
from gatehouse.errors import BadRequest
from gatehouse.store import Store
from gatehouse.store._url import redact_url

__all__ = ["BUS_SCHEMES", "STORE_SCHEMES", "is_shared", "open_bus", "open_store", "redact_url"]

STORE_SCHEMES = ("sqlite", "postgresql")
BUS_SCHEMES = ("memory", "nats")


def _scheme(url: str) -> str:
    scheme, sep, _ = url.partition("://")
    return scheme.lower() if sep else ""


def is_shared(store_url: str) -> bool:
    """Whether other processes may write the same store (then replicas sync what they cache)."""
    return _scheme(store_url) != "sqlite"


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
    if scheme in ("postgresql", "postgres"):
        try:
            from gatehouse.store.postgres import PostgresStore
        except ImportError:
            raise BadRequest(
                "the postgresql store needs asyncpg: pip install 'gatehouse[postgres]'", code="driver_missing"
            ) from None
        return PostgresStore(
            url=url,
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
    if scheme in ("nats", "tls"):
        try:
            from gatehouse.bus.nats import NatsBus
        except ImportError:
            raise BadRequest(
                "the nats bus needs nats-py: pip install 'gatehouse[nats]'", code="driver_missing"
            ) from None
        return NatsBus(url=url)
    raise BadRequest(
        f"unknown bus URL scheme `{scheme or url}` (one of {', '.join(BUS_SCHEMES)})",
        code="invalid_bus_url",
    )

"""Typed settings, built once at the edge (flags and environment) and passed in."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from gatehouse.errors import BadRequest

__all__ = ["MIN_SESSION_PROVENANCE", "ROLES", "Settings"]

ROLES = ("all", "api", "scheduler")
MIN_SESSION_PROVENANCE = 4 * 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8081
    metrics_port: int | None = 9090
    data_dir: Path = Path("./gatehouse-data")
    policy_file: Path | None = None
    admin_key: str | None = None
    max_body_bytes: int = 1024 * 1024
    max_labels: int = 64
    # The classifier reads every character of the prompt on the event loop: bound it.
    max_prompt_chars: int = 16 * 1024
    max_classified_attachment_chars: int = 16 * 1024
    max_attachments: int = 16
    builtin_workers: int = 2
    builtin_topics: tuple[str, ...] = ("job.demo.**",)
    max_lease_attempts: int = 5
    maintenance_interval: float = 0.5
    default_fail_mode: str = "closed"
    trust_keys: tuple[Path, ...] = field(default_factory=tuple)
    watch_policy: bool = True
    kernel_socket: Path | None = None
    kernel_deadline: float = 0.05
    audit: bool = True
    rate_limit_identity: str = "200/400"
    rate_limit_tenant: str = "1000/2000"
    audit_checkpoint_every: int = 100
    # Every this many seconds the plane signs the heads that moved and a root over all of them:
    # what a crash can leave unsigned (`gatehouse.audit.writer`).
    audit_seal_interval: float = 2.0
    # An append-only file or an http(s) URL outside the data directory (`gatehouse.audit.witness`).
    audit_witness: str | None = None
    # Where the signing key lives (default <data_dir>/keys). Outside the data directory, someone
    # who can write the database cannot re-sign what they changed (docs/audit.md).
    keys_dir: Path | None = None
    # Where the drivers connect, by URL scheme (`gatehouse.control.drivers`). An empty store URL
    # means the embedded default, `sqlite:///<data_dir>/gatehouse.db` (three slashes and a
    # relative path, or four and an absolute one).
    store_url: str = ""
    bus_url: str = "memory://"
    # The AES-GCM key of stored secrets, base64 of 32 bytes (`$GATEHOUSE_SECRETS_KEY`); None:
    # `<keys dir>/secrets.key`, created on first start. Never in the database.
    secrets_key: str | None = field(default=None, repr=False)
    # The `iss` claim of minted credentials.
    credential_issuer: str = "gatehouse"
    # Bounds of one brokered call: the answer's body (decoded) and the whole exchange, redirects
    # included (`broker.transport.EgressLimits`).
    broker_max_response_bytes: int = 10 * 1024 * 1024
    broker_timeout: float = 30.0
    # What this process runs (`ROLES`): `all` (API, scheduler loops and built-in workers), `api`
    # (the API only), `scheduler` (lease and approval expiry and the built-in workers; over HTTP
    # only health and metrics).
    role: str = "all"
    # On a shared store, how often a replica re-reads what it caches from the store (the active
    # policy, containments, revoked keys): the bound on a missed bus broadcast.
    sync_interval: float = 1.0
    # Characters of untrusted tool output each session keeps for provenance (`from_untrusted`);
    # past it the session fails closed (every value counts as untrusted). At least 4 MiB.
    session_provenance_chars: int = 4 * 1024 * 1024
    # The bubblewrap executable that sandboxes the processes Gatehouse starts for adapters
    # (`gatehouse.sandbox`); one that cannot run leaves sandboxed adapters unavailable.
    sandbox_bwrap: str = "bwrap"

    @property
    def sandbox_forbidden(self) -> tuple[Path, ...]:
        """What no sandbox may see: the data directory, the keys, an SQLite database's directory."""
        paths = [self.data_dir, self.keys_dir or self.data_dir / "keys"]
        if self.store_url.startswith("sqlite:///"):
            # Its directory: the journal and WAL files sit beside the database.
            paths.append(Path(self.store_url[len("sqlite:///") :]).absolute().parent)
        return tuple(paths)

    @property
    def serves_api(self) -> bool:
        return self.role in ("all", "api")

    @property
    def runs_scheduler(self) -> bool:
        return self.role in ("all", "scheduler")

    @property
    def signing_key_path(self) -> Path:
        return (self.keys_dir or self.data_dir / "keys") / "server.key"

    @property
    def secrets_key_path(self) -> Path:
        return (self.keys_dir or self.data_dir / "keys") / "secrets.key"

    @property
    def credentials_key_path(self) -> Path:
        return (self.keys_dir or self.data_dir / "keys") / "credentials.key"

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise BadRequest(f"unknown role `{self.role}` (one of {', '.join(ROLES)})", code="invalid_role")
        if self.session_provenance_chars < MIN_SESSION_PROVENANCE:
            raise BadRequest(
                f"a session keeps at least {MIN_SESSION_PROVENANCE} characters of untrusted output "
                f"for provenance, not {self.session_provenance_chars}",
                code="invalid_session_bound",
            )
        if not self.store_url:
            object.__setattr__(self, "store_url", f"sqlite:///{self.data_dir / 'gatehouse.db'}")

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Flags win over `GATEHOUSE_*` environment variables, which win over defaults."""
        env: dict[str, object] = {}
        if key := os.environ.get("GATEHOUSE_ADMIN_KEY"):
            env["admin_key"] = key
        if d := os.environ.get("GATEHOUSE_DATA_DIR"):
            env["data_dir"] = Path(d)
        if b := os.environ.get("GATEHOUSE_MAX_BODY_BYTES"):
            env["max_body_bytes"] = int(b)
        if n := os.environ.get("GATEHOUSE_SESSION_PROVENANCE_CHARS"):
            env["session_provenance_chars"] = int(n)
        if url := os.environ.get("GATEHOUSE_STORE_URL"):
            env["store_url"] = url
        if url := os.environ.get("GATEHOUSE_BUS_URL"):
            env["bus_url"] = url
        if d := os.environ.get("GATEHOUSE_KEYS_DIR"):
            env["keys_dir"] = Path(d)
        if w := os.environ.get("GATEHOUSE_AUDIT_WITNESS"):
            env["audit_witness"] = w
        if k := os.environ.get("GATEHOUSE_SECRETS_KEY"):
            env["secrets_key"] = k
        if i := os.environ.get("GATEHOUSE_CREDENTIAL_ISSUER"):
            env["credential_issuer"] = i
        if b := os.environ.get("GATEHOUSE_BROKER_MAX_RESPONSE_BYTES"):
            env["broker_max_response_bytes"] = int(b)
        if t := os.environ.get("GATEHOUSE_BROKER_TIMEOUT"):
            env["broker_timeout"] = float(t)
        if b := os.environ.get("GATEHOUSE_SANDBOX_BWRAP"):
            env["sandbox_bwrap"] = b
        if r := os.environ.get("GATEHOUSE_ROLE"):
            env["role"] = r
        env.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**env)  # type: ignore[arg-type]

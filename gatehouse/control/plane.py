"""The control plane assembled: drivers, kernel, the decision pipeline, the services, and the
background loops (maintenance, queue depth, policy file watch, built-in workers).

Every service is built here from one `Deps` value and the few services it needs, in the order
they depend on each other; nothing is wired after construction. Bus subscriptions are made in
`start` (subscribing is I/O for a network bus) and dropped in `stop`.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from pathlib import Path

from gatehouse.audit.events import current_actor
from gatehouse.audit.witness import Witness, open_witness
from gatehouse.broker.credentials import Credentials
from gatehouse.broker.secrets import SecretBox, Secrets, load_secrets_key
from gatehouse.bus import Bus, Subscription
from gatehouse.bus.subjects import IDENTITY_REVOKED, JOBS_QUEUED, POLICY_CHANGED
from gatehouse.config import Settings
from gatehouse.control.approvals import ApprovalFlow
from gatehouse.control.auth import Authenticator
from gatehouse.control.broker import Broker
from gatehouse.control.builtin import run_builtin_worker
from gatehouse.control.decide import DecisionPipeline
from gatehouse.control.deps import Deps
from gatehouse.control.dispatch import DispatchGate
from gatehouse.control.drivers import is_shared, open_bus, open_store
from gatehouse.control.identities import Identities
from gatehouse.control.incidents import Incidents
from gatehouse.control.installer import PolicyInstaller
from gatehouse.control.leases import Leases
from gatehouse.control.outputs import OutputGate
from gatehouse.control.shadow import ShadowPolicy
from gatehouse.control.signals import SAMPLE_SECONDS, SignalHistory
from gatehouse.control.step_approvals import StepApprovals
from gatehouse.control.steps import StepGate
from gatehouse.control.submit import SubmitGate
from gatehouse.crypto import VerifyKey, load_or_create_signing_key
from gatehouse.domain.identity import Identity, hash_key, new_api_key
from gatehouse.domain.ids import new_id, now
from gatehouse.kernel import Kernel
from gatehouse.kernel.remote import RemoteKernel
from gatehouse.metrics import Metrics
from gatehouse.store import Store

__all__ = ["ControlPlane"]

log = logging.getLogger("gatehouse")


class ControlPlane:
    def __init__(self, settings: Settings, *, store: Store | None = None, bus: Bus | None = None) -> None:
        self.settings = settings
        self.metrics = Metrics()
        # The data directory holds the database, its keys and quarantined originals: this user's
        # alone (the database files themselves are 0600, `store/sqlite/connection.py`).
        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        settings.data_dir.chmod(0o700)
        # With `keys_dir` outside the data directory, whoever can write the database cannot
        # re-sign the audit log (docs/audit.md).
        self.signing_key = load_or_create_signing_key(settings.signing_key_path)
        self.witness: Witness | None = None
        if store is None and settings.audit_witness:
            _warn_if_inside(settings.audit_witness, settings.data_dir)
            self.witness = open_witness(settings.audit_witness)
        self.store: Store = store or open_store(
            settings.store_url,
            audit_key=self.signing_key,
            checkpoint_every=settings.audit_checkpoint_every,
            audit=settings.audit,
            audit_witness=self.witness,
        )
        self.bus: Bus = bus or open_bus(settings.bus_url)
        self.kernel: Kernel
        if settings.kernel_socket is not None:
            self.kernel = RemoteKernel(
                metrics=self.metrics,
                socket_path=settings.kernel_socket,
                deadline=settings.kernel_deadline,
                default_fail_mode=settings.default_fail_mode,
            )
        else:
            self.kernel = Kernel(metrics=self.metrics, default_fail_mode=settings.default_fail_mode)
        deps = Deps(
            store=self.store, bus=self.bus, kernel=self.kernel, metrics=self.metrics, settings=settings
        )
        # The broker's keys sit with the server's (outside the database): the secrets key from
        # the environment or `<keys dir>/secrets.key`, the credential signing key beside it.
        self.secrets = Secrets(
            store=self.store, box=SecretBox(load_secrets_key(settings.secrets_key_path, settings.secrets_key))
        )
        self.credentials = Credentials(
            store=self.store,
            metrics=self.metrics,
            key_path=settings.credentials_key_path,
            issuer=settings.credential_issuer,
        )
        self.incidents = Incidents(deps=deps, credentials=self.credentials)
        self.auth = Authenticator(store=self.store, incidents=self.incidents)
        trusted = {k.key_id: k for k in (VerifyKey.load(p) for p in settings.trust_keys)}
        self.installer = PolicyInstaller(deps=deps, trusted=trusted)
        self.shadow = ShadowPolicy(deps=deps, installer=self.installer)
        self.pipeline = DecisionPipeline(
            kernel=self.kernel, incidents=self.incidents, metrics=self.metrics, shadow=self.shadow
        )
        self.submit_gate = SubmitGate(deps=deps, pipeline=self.pipeline)
        self.step_approvals = StepApprovals(deps=deps, key=self.signing_key, incidents=self.incidents)
        self.approvals = ApprovalFlow(
            deps=deps, key=self.signing_key, incidents=self.incidents, steps=self.step_approvals
        )
        self.outputs = OutputGate(deps=deps, incidents=self.incidents)
        self.step_gate = StepGate(
            deps=deps,
            pipeline=self.pipeline,
            incidents=self.incidents,
            outputs=self.outputs,
            approvals=self.step_approvals,
        )
        self.step_gate.bound = settings.session_provenance_chars
        self.broker = Broker(
            deps=deps,
            steps=self.step_gate,
            incidents=self.incidents,
            secrets=self.secrets,
            credentials=self.credentials,
        )
        self.dispatch_gate = DispatchGate(deps=deps, pipeline=self.pipeline, approval_key=self.signing_key)
        self.leases = Leases(deps=deps, dispatch=self.dispatch_gate, outputs=self.outputs)
        self.identities = Identities(deps=deps, incidents=self.incidents)
        self._subscriptions: list[Subscription] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.signals = SignalHistory(self.metrics)
        self._counts: dict[str, int] = {}
        self._oldest_pending: float | None = None

    async def start(self) -> None:
        await self.store.open()
        await self.bus.open()
        self._subscriptions = [
            await self.bus.subscribe(JOBS_QUEUED, self.leases.on_queued),
            await self.bus.subscribe(POLICY_CHANGED, self.installer.on_changed),
            await self.bus.subscribe(IDENTITY_REVOKED, self.identities.on_revoked),
        ]
        await self.installer.startup(self.settings.policy_file)
        await self.shadow.startup()
        await self.incidents.load()
        await self.incidents.load_revoked()
        await self._bootstrap_admin()
        self.metrics.watch_queue(lambda: self._counts, lambda: self._oldest_pending)
        if self.settings.runs_scheduler:
            self._tasks.append(asyncio.create_task(self._maintain()))
        if is_shared(self.settings.store_url) and self.settings.sync_interval > 0:
            self._tasks.append(asyncio.create_task(self._sync_replicas()))
        if self.settings.audit and self.settings.audit_seal_interval > 0:
            self._tasks.append(asyncio.create_task(self._seal_audit()))
        self._tasks.append(asyncio.create_task(self._refresh_counts()))
        self._tasks.append(asyncio.create_task(self._sample_signals()))
        if self.settings.policy_file is not None and self.settings.watch_policy:
            self._tasks.append(asyncio.create_task(self.installer.watch(self.settings.policy_file)))
        for i in range(self.settings.builtin_workers if self.settings.runs_scheduler else 0):
            self._tasks.append(
                asyncio.create_task(run_builtin_worker(self.leases, self.settings.builtin_topics, i))
            )
        # Everything allocated so far (modules, the compiled policy) lives as long as the
        # process: keep it out of the cyclic collector's full passes, which otherwise walk all
        # of it every few thousand requests and show up as latency spikes.
        gc.collect()
        gc.freeze()
        # A decision allocates a few hundred short-lived containers (the context, the record,
        # the row tuples): at the default 700 the young generation is collected every couple of
        # requests and the older ones far more often than anything in them dies. Measured with
        # bench/step_bench.py and bench/service_bench.py, two runs each: CPU per step decision
        # 610 -> 530 us and per submit 545-595 -> 461 us, submit p99 60 -> 40-44 ms at 64 in flight.
        gc.set_threshold(10000, 20, 20)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        for subscription in self._subscriptions:
            await subscription.unsubscribe()
        self._subscriptions.clear()
        await self.broker.aclose()
        if isinstance(self.kernel, RemoteKernel):
            await self.kernel.close()
        await self.shadow.drain()
        await self.bus.close()
        await self.store.close()

    async def _maintain(self) -> None:
        """Expire overdue leases and approval requests, every `maintenance_interval` seconds."""
        current_actor.set("system:scheduler")
        while True:
            try:
                await self.leases.expire_leases()
                await self.approvals.expire_overdue()
            except Exception:
                log.exception("maintenance pass failed")
            await asyncio.sleep(self.settings.maintenance_interval)

    async def _sync_replicas(self) -> None:
        """On a store other processes write: every `sync_interval` seconds, pick up a policy
        installed, a containment made or lifted, or a key revoked through another replica, in
        case its bus broadcast was lost (the store is the source of truth)."""
        while True:
            await asyncio.sleep(self.settings.sync_interval)
            try:
                await self.installer.sync()
                await self.shadow.sync()
                await self.incidents.load()
                await self.incidents.load_revoked()
            except Exception as exc:
                log.warning("replica sync failed (retried): %s", exc)

    async def health(self) -> str | None:
        """None when the store and the bus answer, else what is wrong (for `/readyz`)."""
        for backend in (self.store, self.bus):
            ping = getattr(backend, "ping", None)
            if ping is not None and (problem := await ping()) is not None:
                return str(problem)
        return None

    async def _seal_audit(self) -> None:
        """Sign the moved heads and a root every `audit_seal_interval` seconds (the first time
        right away), so a crash leaves at most that long unsigned; then make the witness
        durable, off the event loop."""
        while True:
            try:
                await self.store.seal_audit()
                if self.witness is not None:
                    await asyncio.to_thread(self.witness.sync)
            except Exception:
                log.exception("audit sealing failed (retried)")
            await asyncio.sleep(self.settings.audit_seal_interval)

    async def _refresh_counts(self) -> None:
        # Queue depth for /metrics, refreshed off the scrape path.
        while True:
            try:
                self._counts = await self.store.count_by_status()
                self._oldest_pending = await self.store.oldest_in_state("pending_approval")
            except Exception:
                log.exception("queue depth refresh failed")
            await asyncio.sleep(2.0)

    async def _sample_signals(self) -> None:
        # Readings for `incident status`: a rate needs the counters at two points in time.
        while True:
            await asyncio.sleep(SAMPLE_SECONDS)
            try:
                self.signals.sample()
            except Exception:
                log.exception("incident signal sample failed")

    async def _bootstrap_admin(self) -> None:
        key = self.settings.admin_key
        if key is not None:
            if await self.store.identity_by_key_hash(hash_key(key)) is not None:
                return
        elif any(i.is_admin for i in await self.store.list_identities(None)):
            return
        generated = key is None
        key = key or new_api_key()
        admin = Identity(
            id=new_id("idn"),
            name="admin",
            tenant="default",
            roles=("admin",),
            topics=("**",),
            capabilities=("*",),
            created_at=now(),
            created_by="bootstrap",
        )
        await self.store.add_identity(admin, hash_key(key))
        if generated:
            # Shown once; only its hash is stored.
            print(f"gatehouse: created admin identity; API key (shown once): {key}", file=sys.stderr)
        else:
            print("gatehouse: created admin identity from GATEHOUSE_ADMIN_KEY", file=sys.stderr)


def _warn_if_inside(target: str, data_dir: Path) -> None:
    if target.startswith(("http://", "https://")):
        return
    try:
        inside = Path(target).expanduser().resolve().is_relative_to(data_dir.resolve())
    except OSError:
        return
    if inside:
        log.warning(
            "the audit witness %s is inside the data directory: whoever can change the log can "
            "change it too (put it on another disk or host)",
            target,
        )

"""The control plane assembled: store, bus, kernel, gates, scheduler, built-in workers."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys

from gatehouse.bus import Bus, MemoryBus
from gatehouse.config import Settings
from gatehouse.control.approvals import ApprovalFlow
from gatehouse.control.builtin import run_builtin_worker
from gatehouse.control.dispatch import Scheduler
from gatehouse.control.incidents import Incidents
from gatehouse.control.installer import PolicyInstaller
from gatehouse.control.submit import Gates
from gatehouse.crypto import VerifyKey, load_or_create_signing_key
from gatehouse.domain.identity import Identity, hash_key, new_api_key
from gatehouse.domain.ids import new_id, now
from gatehouse.kernel import Kernel
from gatehouse.kernel.remote import RemoteKernel
from gatehouse.metrics import Metrics
from gatehouse.store import SQLiteStore, Store

__all__ = ["ControlPlane"]

log = logging.getLogger("gatehouse")


class ControlPlane:
    def __init__(self, settings: Settings, *, store: Store | None = None, bus: Bus | None = None) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.signing_key = load_or_create_signing_key(settings.data_dir / "keys" / "server.key")
        self.store: Store = store or SQLiteStore(
            path=settings.db_path,
            audit_key=self.signing_key,
            checkpoint_every=settings.audit_checkpoint_every,
            audit=settings.audit,
        )
        self.bus: Bus = bus or MemoryBus()
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
        common = dict(
            store=self.store,
            kernel=self.kernel,
            bus=self.bus,
            metrics=self.metrics,
            settings=settings,
        )
        self.incidents = Incidents(store=self.store, metrics=self.metrics)
        self.gates = Gates(**common, incidents=self.incidents)  # type: ignore[arg-type]
        self.scheduler = Scheduler(
            **common,  # type: ignore[arg-type]
            approval_key=self.signing_key,
            incidents=self.incidents,
        )
        self.approvals = ApprovalFlow(
            store=self.store, bus=self.bus, metrics=self.metrics, key=self.signing_key
        )
        self.scheduler.approval_flow = self.approvals
        trusted = {k.key_id: k for k in (VerifyKey.load(p) for p in settings.trust_keys)}
        self.installer = PolicyInstaller(
            store=self.store,
            kernel=self.kernel,
            bus=self.bus,
            metrics=self.metrics,
            trusted=trusted,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._counts: dict[str, int] = {}
        self._oldest_pending: float | None = None

    async def start(self) -> None:
        await self.store.open()
        await self.bus.open()
        await self.installer.startup(self.settings.policy_file)
        await self.incidents.load()
        await self._bootstrap_admin()
        self.metrics.watch_queue(lambda: self._counts, lambda: self._oldest_pending)
        self._tasks.append(asyncio.create_task(self.scheduler.run_maintenance()))
        self._tasks.append(asyncio.create_task(self._refresh_counts()))
        if self.settings.policy_file is not None and self.settings.watch_policy:
            self._tasks.append(asyncio.create_task(self.installer.watch(self.settings.policy_file)))
        for i in range(self.settings.builtin_workers):
            self._tasks.append(
                asyncio.create_task(run_builtin_worker(self.scheduler, self.settings.builtin_topics, i))
            )
        # Everything allocated so far (modules, the compiled policy) lives as long as the
        # process: keep it out of the cyclic collector's full passes, which otherwise walk all
        # of it every few thousand requests and show up as latency spikes.
        gc.collect()
        gc.freeze()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if isinstance(self.kernel, RemoteKernel):
            await self.kernel.close()
        await self.bus.close()
        await self.store.close()

    async def _refresh_counts(self) -> None:
        # Queue depth for /metrics, refreshed off the scrape path.
        while True:
            try:
                self._counts = await self.store.count_by_status()
                self._oldest_pending = await self.store.oldest_in_state("pending_approval")
            except Exception:
                log.exception("queue depth refresh failed")
            await asyncio.sleep(2.0)

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

"""Installing policy bundles: validate, persist, swap, broadcast.

A bundle that fails to load never replaces the running one. The installed bundle is stored, so
a restart comes back on it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from gatehouse.bus import Bus
from gatehouse.errors import PolicyError
from gatehouse.jobs.model import now
from gatehouse.kernel.kernel import Kernel
from gatehouse.policy import Policy, load
from gatehouse.store import PolicyRow, Store

__all__ = ["PolicyInstaller"]

log = logging.getLogger("gatehouse.policy")


class PolicyInstaller:
    def __init__(self, *, store: Store, kernel: Kernel, bus: Bus) -> None:
        self.store = store
        self.kernel = kernel
        self.bus = bus
        self.installed_at: float | None = None
        self.installed_by: str | None = None
        self.signature: dict[str, Any] | None = None
        bus.subscribe("policy.changed", self._on_changed)

    async def startup(self, policy_file: Path | None) -> None:
        """Load `policy_file` if given (and persist it), else the stored bundle, else none."""
        if policy_file is not None:
            text = policy_file.read_text(encoding="utf-8")
            await self.install(text, None, by=f"file:{policy_file}")
            return
        row = await self.store.active_policy()
        if row is None:
            log.warning("no policy bundle is installed: every decision falls to the fail mode")
            return
        self._activate(load(row.text), row)

    def _activate(self, policy: Policy, row: PolicyRow) -> None:
        self.kernel.install(policy)
        self.installed_at = row.installed_at
        self.installed_by = row.installed_by
        self.signature = row.signature
        log.info("policy %s (%s) active", policy.name, policy.snapshot)

    async def install(self, text: str, signature: dict[str, Any] | None, *, by: str) -> Policy:
        policy = load(text)  # raises PolicyError; the running bundle stays
        current = self.kernel.policy
        if current is not None and current.snapshot == policy.snapshot and signature is None:
            return current
        row = PolicyRow(
            snapshot=policy.snapshot,
            text=text,
            signature=signature,
            installed_at=now(),
            installed_by=by,
            serial=(signature or {}).get("serial"),
        )
        await self.store.save_policy(row)
        self._activate(policy, row)
        await self.bus.publish("policy.changed", {"snapshot": policy.snapshot})
        return policy

    async def _on_changed(self, data: dict[str, Any]) -> None:
        # Another replica installed a bundle: pick it up from the store.
        if data.get("snapshot") == self.kernel.snapshot:
            return
        row = await self.store.active_policy()
        if row is None:
            return
        try:
            self._activate(load(row.text), row)
        except PolicyError:
            log.exception("stored bundle %s does not load; keeping the running one", row.snapshot)

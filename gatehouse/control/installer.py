"""Installing policy bundles: verify, persist, swap, broadcast; last-known-good on a bad day.

A bundle that fails to load or verify never replaces the running one. Every bundle that loaded
and verified is stored with its signature, newest last: the newest stored row that still loads
and verifies is the *last-known-good* bundle, which a restart falls back to when the policy
file is missing, corrupt or tampered with. With no good bundle at all the kernel has no policy
and the fail mode decides.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gatehouse.audit.events import SYSTEM, AuditEvent
from gatehouse.bus.subjects import POLICY_CHANGED
from gatehouse.control.deps import Deps
from gatehouse.crypto import VerifyKey
from gatehouse.domain.ids import now
from gatehouse.errors import BadRequest, PolicyError
from gatehouse.kernel.bundles import BundleRefused, parse_envelope, verify_bundle
from gatehouse.policy import Policy, load
from gatehouse.store import PolicyRow

__all__ = ["PolicyInstaller", "read_policy_file"]

log = logging.getLogger("gatehouse.policy")


def read_policy_file(path: Path) -> tuple[str, dict[str, Any] | None]:
    """(bundle text, signature) from a plain YAML/JSON bundle or a signed envelope file."""
    raw = path.read_text(encoding="utf-8")
    stripped = raw.lstrip()
    if stripped.startswith("{"):
        try:
            data = json.loads(raw)
        except ValueError:
            return raw, None
        if isinstance(data, dict) and "bundle" in data and "signature" in data:
            return parse_envelope(data)
    return raw, None


@dataclass
class Installed:
    policy: Policy
    signature: dict[str, Any] | None
    serial: int | None
    installed_at: float
    installed_by: str | None
    # A trusted key's signature was checked. Without trusted keys a signature block is kept
    # (and shown) but proves nothing: the bundle counts as unsigned.
    signature_verified: bool = False

    @property
    def signed(self) -> bool:
        return self.signature_verified


class PolicyInstaller:
    def __init__(self, *, deps: Deps, trusted: dict[str, VerifyKey] | None = None) -> None:
        self.store = deps.store
        self.kernel = deps.kernel
        self.bus = deps.bus
        self.metrics = deps.metrics
        self.trusted = dict(trusted or {})
        self.current: Installed | None = None
        # Why the running bundle is not the one asked for (e.g. the policy file was refused).
        self.degraded: str | None = None
        self._lock = asyncio.Lock()
        self._synced: str | None = None  # the newest stored snapshot `sync` last saw

    @property
    def serial(self) -> int | None:
        return self.current.serial if self.current else None

    async def _refuse(self, exc: BaseException, source: str) -> None:
        reason = exc.reason if isinstance(exc, BundleRefused) else "invalid_bundle"
        self.metrics.bundle_refused.labels(reason).inc()
        log.error("policy bundle refused (%s): %s", reason, exc)
        await self.store.append_audit(
            [
                AuditEvent(
                    SYSTEM,
                    "policy.refused",
                    {"reason": reason, "message": str(exc), "source": source},
                )
            ]
        )

    def verify(
        self, policy: Policy, text: str, signature: dict[str, Any] | None, *, rollback: bool = True
    ) -> int | None:
        """`_verify` for another installer of bundles (the shadow): the same rules as a live
        install; `rollback=False` skips the serial check (a stored shadow checked again)."""
        if not rollback and self.trusted:
            return verify_bundle(
                text, signature, self.trusted, now=now(), running_serial=None, name=policy.name
            )
        return self._verify(policy, text, signature)

    def _verify(self, policy: Policy, text: str, signature: dict[str, Any] | None) -> int | None:
        """The serial if the bundle may be installed; raises `BundleRefused`."""
        if not self.trusted:
            # Nothing to check a signature against: whatever the block claims (its key id, its
            # serial) is the sender's word, so the bundle is installed as unsigned.
            if signature is None:
                log.warning("installing an UNSIGNED bundle %s (no trusted keys configured)", policy.snapshot)
            else:
                log.warning(
                    "installing bundle %s with an UNVERIFIED signature (no trusted keys configured)",
                    policy.snapshot,
                )
            return None
        current = self.current
        return verify_bundle(
            text,
            signature,
            self.trusted,
            now=now(),
            running_serial=current.serial if current else None,
            name=policy.name,
        )

    async def startup(self, policy_file: Path | None) -> None:
        lkg = await self._last_known_good()
        if lkg is not None:
            self._activate(lkg)
        if policy_file is None:
            if lkg is None:
                log.warning("no policy bundle is installed: every decision falls to the fail mode")
            return
        # Named by its file name: the record is read over the API (policy, audit), and the
        # server's directory layout is nobody's business there.
        source = f"file:{policy_file.name}"
        try:
            if not policy_file.exists():
                raise BadRequest(f"policy file `{policy_file}` does not exist", code="policy_file_missing")
            text, signature = read_policy_file(policy_file)
        except (BadRequest, OSError, UnicodeDecodeError) as exc:
            await self._refuse(exc, source)
            self._fall_back(lkg, exc)
            return
        try:
            await self.install(text, signature, by=source)  # refusals are counted in there
        except (PolicyError, BadRequest) as exc:
            self._fall_back(lkg, exc)

    def _fall_back(self, lkg: Installed | None, exc: BaseException) -> None:
        if lkg is not None:
            self.metrics.lkg_fallback.inc()
            self.degraded = f"policy file refused ({exc}); running last-known-good {lkg.policy.snapshot}"
        else:
            self.degraded = f"policy file refused ({exc}); no last-known-good bundle"
        log.error("!!! %s", self.degraded)

    async def _last_known_good(self) -> Installed | None:
        for row in await self.store.policy_history(limit=20):
            try:
                policy = load(row.text)
                if self.trusted:
                    verify_bundle(
                        row.text,
                        row.signature,
                        self.trusted,
                        now=now(),
                        running_serial=None,
                        name=policy.name,
                    )
            except (PolicyError, BadRequest) as exc:
                log.error("stored bundle %s is not good (%s); trying an older one", row.snapshot, exc)
                continue
            return Installed(
                policy,
                row.signature,
                row.serial,
                row.installed_at,
                row.installed_by,
                signature_verified=bool(self.trusted),
            )
        return None

    def _activate(self, installed: Installed) -> None:
        self.kernel.install(installed.policy)
        self.current = installed
        log.info("policy %s (%s) active", installed.policy.name, installed.policy.snapshot)

    async def install(self, text: str, signature: dict[str, Any] | None, *, by: str) -> Policy:
        """Verify and install; raises `PolicyError` or `BundleRefused` and keeps the running one."""
        async with self._lock:
            try:
                # `load` runs every check of the bundle itself, its classifier patterns included
                # (the same checks as `gatehouse policy check`).
                policy = load(text)
                current = self.current
                if (
                    current is not None
                    and current.policy.snapshot == policy.snapshot
                    and current.signature == signature
                ):
                    return current.policy  # the same bundle again: a no-op (and not a rollback)
                serial = self._verify(policy, text, signature)
            except (PolicyError, BadRequest) as exc:
                await self._refuse(exc, by)
                raise
            verified = bool(self.trusted)  # `_verify` raised unless a trusted key signed it
            installed = Installed(policy, signature, serial, now(), by, signature_verified=verified)
            await self.store.save_policy(
                PolicyRow(
                    snapshot=policy.snapshot,
                    text=text,
                    signature=signature,
                    installed_at=installed.installed_at,
                    installed_by=by,
                    serial=serial,
                    signature_verified=verified,
                )
            )
            self._activate(installed)
            self.degraded = None
        await self.bus.publish(POLICY_CHANGED, {"snapshot": policy.snapshot})
        return policy

    async def watch(self, path: Path, interval: float = 0.5) -> None:
        """Hot reload: install the file whenever its content changes."""
        seen: str | None = None
        while True:
            try:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                digest = None
            if digest is not None and digest != seen:
                if seen is not None:
                    try:
                        text, signature = read_policy_file(path)
                        await self.install(text, signature, by=f"file:{path.name}")
                    except (PolicyError, BadRequest, UnicodeDecodeError) as exc:
                        log.error("reloading %s refused: %s", path, exc)
                seen = digest
            await asyncio.sleep(interval)

    async def sync(self) -> None:
        """The periodic check of a replica: when the newest stored bundle changed since the last
        look and is not the one running, load it as `on_changed` would (a bundle that does not
        load is not retried until a newer one is stored)."""
        newest = await self.store.policy_history(limit=1)
        snapshot = newest[0].snapshot if newest else None
        if snapshot is None or snapshot == self._synced:
            return
        self._synced = snapshot
        if snapshot != self.kernel.snapshot:
            await self.on_changed({"snapshot": snapshot})

    async def on_changed(self, data: dict[str, Any]) -> None:
        """The `policy.changed` handler: another replica installed a bundle; load it from the
        store (the message names the snapshot only; the store has the text and signature)."""
        if data.get("snapshot") == self.kernel.snapshot:
            return
        lkg = await self._last_known_good()
        if lkg is not None and lkg.policy.snapshot != self.kernel.snapshot:
            self._activate(lkg)

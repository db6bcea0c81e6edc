"""Shadow bundles: a candidate policy judged beside the live one on real traffic, never enforced.

`PUT /api/v1/policy/shadow` installs a candidate under the same rules as a live install (it must
load; with trusted keys it must be signed, unexpired and not older than the running bundle),
and from then on every submit, dispatch and step decision the kernel makes is also put to the
shadow bundle, on the same request context object. When the two *decisions* differ, the
disagreement is counted (`gatehouse_shadow_disagreements_total{live,shadow}`) and stored with
the live decision's id, so `GET /api/v1/policy/shadow/diff` lists what the candidate would have
changed. The shadow's answer never reaches the caller.

Off the hot path's critical section: the shadow is asked after the live decision is made, with
the pure engine (a few microseconds, no cache, no I/O), and the write of a disagreement is a
task of its own that the request does not await. Decisions that the pipeline makes before the
policy (containment, the caller's scope, the catalog's schema) and those the kernel could not
make (fail mode) are not compared: the shadow bundle would not be asked there either.

Disagreements are gathered and written together, at most `FLUSH_SECONDS` after the first of a
batch (a candidate that disagrees with most traffic would otherwise add a task and a write to
every request: the worst case measured 1.86x on the submit p50). A crash loses at most that
window of disagreements; the live decisions and their records are never at stake.

Promotion is a normal install (`PUT /api/v1/policy` with the same bundle); the shadow stays
until it is removed (`DELETE`), so after a promotion it simply agrees everywhere.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from gatehouse.audit.events import SYSTEM, AuditEvent
from gatehouse.control.deps import Deps
from gatehouse.control.installer import Installed, PolicyInstaller
from gatehouse.domain.ids import new_id, now
from gatehouse.domain.records import Verdict
from gatehouse.domain.shadow import Disagreement
from gatehouse.errors import BadRequest, GatehouseError, PolicyError
from gatehouse.policy import ALLOW, DENY, Decision, Policy, load
from gatehouse.store import PolicyRow

__all__ = ["STAGES", "ShadowPolicy"]

log = logging.getLogger("gatehouse.policy")

# The stages whose decisions are enforced (simulate and explain judge nothing for real).
STAGES = frozenset({"submit", "dispatch", "step"})
FLUSH_SECONDS = 0.2
_MAX_BATCH = 5000  # written at once when a batch grows this large before its time is up


class ShadowPolicy:
    def __init__(self, *, deps: Deps, installer: PolicyInstaller) -> None:
        self.store = deps.store
        self.metrics = deps.metrics
        self.installer = installer
        self.current: Installed | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()
        self._batch: list[Disagreement] = []
        self._flush_at: asyncio.TimerHandle | None = None

    # -- install, remove, load ---------------------------------------------------------------

    async def startup(self) -> None:
        """Load the stored shadow bundle (it persists across restarts and is shared by replicas)."""
        await self.sync()

    async def sync(self) -> None:
        """Pick up a shadow bundle installed or removed through another replica."""
        row = await self.store.shadow_policy()
        cur = self.current
        if row is None:
            self.current = None
            return
        if cur is not None and cur.policy.snapshot == row.snapshot:
            return
        try:
            policy = load(row.text)
            self.installer.verify(policy, row.text, row.signature, rollback=False)
        except (PolicyError, BadRequest) as exc:
            log.error("stored shadow bundle %s is not good (%s): no shadow", row.snapshot, exc)
            self.current = None
            return
        self.current = Installed(policy, row.signature, row.serial, row.installed_at, row.installed_by,
                                 signature_verified=bool(self.installer.trusted))  # fmt: skip

    async def install(self, text: str, signature: dict[str, Any] | None, *, by: str) -> Installed:
        """Verify as a live install would, persist, and start comparing. Raises `PolicyError`
        or `BundleRefused` (the shadow in place, if any, stays)."""
        async with self._lock:
            policy = load(text)
            serial = self.installer.verify(policy, text, signature)
            installed = Installed(
                policy, signature, serial, now(), by, signature_verified=bool(self.installer.trusted)
            )
            await self.store.set_shadow_policy(
                PolicyRow(
                    snapshot=policy.snapshot,
                    text=text,
                    signature=signature,
                    serial=serial,
                    installed_at=installed.installed_at,
                    installed_by=by,
                    signature_verified=installed.signature_verified,
                )
            )
            await self.store.append_audit(
                [
                    AuditEvent(
                        SYSTEM,
                        "policy.shadow_installed",
                        {
                            "snapshot": policy.snapshot,
                            "serial": serial,
                            "installed_by": by,
                            "signature_verified": installed.signature_verified,
                        },
                    )
                ]
            )
            self.current = installed
            log.info(
                "shadow policy %s (%s) installed: judged beside the live bundle", policy.name, policy.snapshot
            )
            return installed

    async def remove(self, *, by: str) -> bool:
        """Stop comparing; False when there was no shadow bundle."""
        async with self._lock:
            stored = await self.store.shadow_policy()
            if stored is None and self.current is None:
                return False
            snapshot = (
                stored.snapshot
                if stored is not None
                else self.current.policy.snapshot
                if self.current
                else None
            )
            await self.store.set_shadow_policy(None)
            await self.store.append_audit(
                [AuditEvent(SYSTEM, "policy.shadow_removed", {"snapshot": snapshot, "removed_by": by})]
            )
            self.current = None
            return True

    # -- the hot path ------------------------------------------------------------------------

    def observe(self, ctx: Mapping[str, Any], verdict: Verdict, *, stage: str, tenant: str | None) -> Verdict:
        """The live `verdict`, after asking the shadow bundle about the same `ctx`; when their
        decisions differ, the verdict comes back with the decision id its record will carry, and
        the disagreement is counted and written in the background."""
        cur = self.current
        if cur is None or stage not in STAGES or verdict.unavailable is not None:
            return verdict
        shadow = _decide(cur.policy, ctx)
        live = verdict.decision
        if shadow.decision == live.decision:
            return verdict
        decision_id = verdict.decision_id or new_id("dec")
        self.metrics.shadow_disagreements.labels(live.decision, shadow.decision).inc()
        subject = ctx.get("target") if ctx.get("target") is not None else ctx.get("topic")
        found = Disagreement(
            decision_id=decision_id,
            timestamp=now(),
            stage=stage,
            tenant=tenant,
            subject=subject if isinstance(subject, str) else None,
            live_snapshot=verdict.snapshot,
            live_decision=live.decision,
            live_rule_id=live.rule_id,
            shadow_snapshot=cur.policy.snapshot,
            shadow_decision=shadow.decision,
            shadow_rule_id=shadow.rule_id,
            shadow_reason=shadow.reason,
        )
        self._batch.append(found)
        if len(self._batch) >= _MAX_BATCH:
            self._flush()
        elif self._flush_at is None:
            self._flush_at = asyncio.get_running_loop().call_later(FLUSH_SECONDS, self._flush)
        return replace(verdict, decision_id=decision_id)

    def _flush(self) -> None:
        if self._flush_at is not None:
            self._flush_at.cancel()
            self._flush_at = None
        batch, self._batch = self._batch, []
        if batch:
            task = asyncio.get_running_loop().create_task(self._record(batch))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _record(self, batch: list[Disagreement]) -> None:
        try:
            await self.store.add_disagreements(batch)
        except Exception:  # the live decisions stand whatever happens to the shadow's record
            log.exception("could not record %d shadow disagreements (first on %s)", len(batch),
                          batch[0].decision_id)  # fmt: skip

    async def drain(self) -> None:
        """Write the disagreements gathered so far and wait for them (at shutdown, and before
        the disagreements are read)."""
        self._flush()
        if self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)


def _decide(policy: Policy, ctx: Mapping[str, Any]) -> Decision:
    try:
        return policy.decide(ctx)
    except GatehouseError as exc:
        # As the kernel would: the bundle's fail mode answers a context it cannot evaluate.
        decision = ALLOW if policy.fail_mode_for(ctx.get("topic")) == "open" else DENY
        return Decision(decision, "kernel_unavailable", f"shadow bundle could not decide: {exc}")

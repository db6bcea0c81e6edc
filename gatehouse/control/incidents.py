"""Incident containment: kill switches for a tenant or an identity.

During an incident an operator contains what is misbehaving, at once and reversibly:

- a contained **tenant** gets no new job past the submit gate and no queued job past the
  dispatch gate (both deny with rule id `incident_containment`), and any result that arrives
  from one of its jobs already running is quarantined for review instead of stored;
- a contained **identity** is refused on every route (403 `identity_contained`), its queued
  jobs are denied at dispatch and its running jobs' results quarantined, like a tenant's.

Unlike revoking a key, lifting a containment restores everything as it was. Containments are
stored (they survive restarts), audited, and checked from memory on the request path.
Adapters are contained by the tool broker, which this build does not include: asking for one
is refused rather than silently recorded.
"""

from __future__ import annotations

from gatehouse.control.deps import Deps
from gatehouse.domain.containment import Containment
from gatehouse.domain.identity import Identity
from gatehouse.domain.ids import new_id, now
from gatehouse.domain.records import Verdict
from gatehouse.errors import BadRequest, Conflict, NotFound
from gatehouse.policy import DENY, Decision

__all__ = ["RULE_ID", "Containment", "Incidents"]

RULE_ID = "incident_containment"
KINDS = ("tenant", "identity")


class Incidents:
    def __init__(self, *, deps: Deps) -> None:
        self.store = deps.store
        self.metrics = deps.metrics
        self._active: dict[tuple[str, str], Containment] = {}

    async def load(self) -> None:
        self._active = {(c.kind, c.target): c for c in await self.store.containments(active_only=True)}
        self.metrics.containments_active.set(len(self._active))

    def check(self, tenant: str, identity_id: str | None) -> Containment | None:
        """The containment that holds a job of `tenant` submitted by `identity_id`, if any."""
        if not self._active:
            return None
        return self._active.get(("tenant", tenant)) or (
            self._active.get(("identity", identity_id)) if identity_id else None
        )

    def identity(self, identity_id: str) -> Containment | None:
        return self._active.get(("identity", identity_id)) if self._active else None

    @staticmethod
    def why(c: Containment) -> str:
        return f"{c.kind} `{c.target}` is contained (incident {c.id}): {c.reason}"

    def verdict(self, c: Containment, snapshot: str | None, stage: str) -> Verdict:
        self.metrics.decision(stage, DENY, RULE_ID)
        return Verdict(decision=Decision(DENY, RULE_ID, self.why(c)), snapshot=snapshot)

    async def contain(
        self, who: Identity, *, kind: str, target: str, reason: str, force: bool = False
    ) -> Containment:
        """Contain `target`. A tenant or identity that does not exist is refused unless `force`:
        a typo must not leave the real one running while the operator believes it contained."""
        if kind not in KINDS:
            raise BadRequest(
                f"cannot contain an adapter (`{target}`): adapters are contained by the tool broker, "
                "which this build does not include",
                code="unsupported_containment",
            )
        if kind == "identity" and target == who.id:
            raise BadRequest("an identity cannot contain itself", code="self_containment")
        if not force:
            await self._require_exists(kind, target)
        existing = self._active.get((kind, target))
        if existing is not None:
            raise Conflict(
                f"{kind} `{target}` is already contained",
                code="already_contained",
                details={"id": existing.id},
            )
        c = Containment(
            id=new_id("inc"),
            kind=kind,
            target=target,
            reason=reason,
            created_at=now(),
            created_by=who.id,
        )
        await self.store.add_containment(c)
        await self.load()
        return c

    async def _require_exists(self, kind: str, target: str) -> None:
        if kind == "identity":
            if await self.store.get_identity(target) is None:
                raise NotFound(
                    f"no identity `{target}` (give `force` to contain it anyway)",
                    code="identity_not_found",
                )
        # A tenant exists while an identity of it does, active or revoked (revoked keys may
        # still have jobs queued or running).
        elif not await self.store.list_identities(target):
            raise NotFound(
                f"no tenant `{target}`: no identity belongs to it (give `force` to contain it anyway)",
                code="tenant_not_found",
            )

    async def lift(self, who: Identity, containment_id: str) -> Containment:
        lifted = await self.store.lift_containment(containment_id, at=now(), by=who.id)
        if lifted is None:
            raise NotFound(f"no active containment `{containment_id}`", code="containment_not_found")
        await self.load()
        return lifted

    async def list(self, *, active_only: bool) -> list[Containment]:
        return await self.store.containments(active_only=active_only)

"""Incident containment: kill switches for a tenant, an identity or a tool adapter.

During an incident an operator contains what is misbehaving, at once and reversibly:

- a contained **tenant** gets no new job past the submit gate and no queued job past the
  dispatch gate (both deny with rule id `incident_containment`), and any result that arrives
  from one of its jobs already running is quarantined for review instead of stored;
- a contained **identity** is refused on every route (403 `identity_contained`), its queued
  jobs are denied at dispatch and its running jobs' results quarantined, like a tenant's.

- a contained **adapter** gets every step denied (rule `incident_containment`, in every tenant:
  the catalog is global, so only a global admin contains or lifts one), and the credentials the
  broker minted for it that are still live are revoked at once.

Unlike revoking a key, lifting a containment restores everything as it was (revoked
credentials stay revoked: the next execution mints a new one). Containments are stored (they
survive restarts), audited, and checked from memory on the request path.
"""

from __future__ import annotations

import re

from gatehouse.broker.credentials import Credentials
from gatehouse.control.deps import Deps
from gatehouse.domain.containment import Containment
from gatehouse.domain.identity import Identity
from gatehouse.domain.ids import new_id, now
from gatehouse.domain.paging import KeysetPage, keyset_page
from gatehouse.domain.records import Verdict
from gatehouse.domain.steps import catalog_of
from gatehouse.errors import BadRequest, Conflict, Forbidden, NotFound
from gatehouse.policy import DENY, Decision

__all__ = ["CONTAINED_CODE", "REVOKED_RULE_ID", "RULE_ID", "Containment", "Incidents"]

RULE_ID = "incident_containment"
# The dispatch gate's deny for a queued job whose submitter's key was revoked since.
REVOKED_RULE_ID = "identity_revoked"
CONTAINED_CODE = "tenant_contained"
KINDS = ("tenant", "identity", "adapter")
# An adapter's name as a step names it (`control.steps`).
_ADAPTER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def _key(kind: str, target: str) -> tuple[str, str]:
    # Adapter names compare case-insensitively (as the catalog's do): containing `github` must
    # hold a step that names `GitHub`.
    return (kind, target.lower() if kind == "adapter" else target)


class Incidents:
    def __init__(self, *, deps: Deps, credentials: Credentials | None = None) -> None:
        self.store = deps.store
        self.metrics = deps.metrics
        self.kernel = deps.kernel
        self.credentials = credentials
        self._active: dict[tuple[str, str], Containment] = {}
        # Identities whose key was revoked: permanent, unlike a containment (see `revoked`).
        self._revoked: set[str] = set()

    async def load(self) -> None:
        self._active = {_key(c.kind, c.target): c for c in await self.store.containments(active_only=True)}
        self.metrics.containments_active.set(len(self._active))

    async def load_revoked(self) -> None:
        self._revoked = {i.id for i in await self.store.list_identities(None) if i.revoked_at is not None}

    def mark_revoked(self, identity_id: str) -> None:
        self._revoked.add(identity_id)

    def revoked(
        self, tenant: str, identity_id: str | None, snapshot: str | None, stage: str
    ) -> Verdict | None:
        """The deny for a job whose submitter's key was revoked (rule `identity_revoked`)."""
        if identity_id is None or identity_id not in self._revoked:
            return None
        self.metrics.decision(stage, DENY, REVOKED_RULE_ID)
        why = f"the API key of identity `{identity_id}`, which submitted this job, was revoked"
        return Verdict(decision=Decision(DENY, REVOKED_RULE_ID, why), snapshot=snapshot)

    def require_open(self, who: Identity, tenant: str, action: str) -> None:
        """Refuse a person's decision on a contained tenant's work (403 `tenant_contained`).

        While a tenant is contained its own reviewers and approvers may be the compromised
        party: they neither release held output nor approve, reject or discard; a global admin
        (the incident responder) still may, within its roles.
        """
        c = self._active.get(("tenant", tenant)) if self._active else None
        if c is None or who.is_global_admin:
            return
        raise Forbidden(
            f"tenant `{tenant}` is contained (incident {c.id}): nobody of it may {action} until it is lifted",
            code=CONTAINED_CODE,
            details={"incident": c.id},
        )

    def check(self, tenant: str, identity_id: str | None, adapter: str | None = None) -> Containment | None:
        """The containment that holds a request of `tenant` by `identity_id` (a step: for
        `adapter`), if any."""
        if not self._active:
            return None
        return (
            self._active.get(("tenant", tenant))
            or (self._active.get(("identity", identity_id)) if identity_id else None)
            or (self._active.get(_key("adapter", adapter)) if adapter else None)
        )

    def adapter(self, name: str) -> Containment | None:
        """The containment in force for the adapter `name`, if any (the MCP gateway asks)."""
        return self._active.get(("adapter", name)) if self._active else None

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
            raise BadRequest(f"cannot contain a `{kind}`", code="unsupported_containment")
        if kind == "adapter" and not _ADAPTER.match(target):
            raise BadRequest(f"`{target[:64]}` is not an adapter name", code="invalid_adapter")
        if kind == "identity" and target == who.id:
            raise BadRequest("an identity cannot contain itself", code="self_containment")
        await self._require_administered(who, kind, target)
        if not force:
            await self._require_exists(kind, target)
        existing = self._active.get(_key(kind, target))
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
        if kind == "adapter" and self.credentials is not None:
            # After the containment is in force, so no credential minted meanwhile outlives it.
            await self.credentials.revoke_matching(tenant=None, adapter=target)
        return c

    async def _require_exists(self, kind: str, target: str) -> None:
        if kind == "adapter":
            # Steps name adapters the catalog may not list, so without a catalog any name is
            # taken; with one, a name it lacks is most likely a typo.
            catalog = catalog_of(self.kernel.policy)
            if catalog and catalog.adapter(target) is None:
                raise NotFound(
                    f"the adapter catalog has no adapter `{target}` (give `force` to contain it anyway)",
                    code="adapter_not_found",
                )
            return
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

    async def _require_administered(self, who: Identity, kind: str, target: str) -> None:
        """An admin of one tenant contains and lifts within that tenant only."""
        if who.is_global_admin:
            return
        if kind == "adapter":
            raise Forbidden(
                f"an adapter serves every tenant: only a global admin contains `{target}`",
                code="global_admin_required",
            )
        if kind == "tenant":
            ok = target == who.tenant
        else:
            identity = await self.store.get_identity(target)
            ok = identity is not None and identity.tenant == who.tenant and not identity.is_global_admin
        if not ok:
            raise Forbidden(
                f"identity `{who.name}` administers tenant `{who.tenant}` only", code="tenant_mismatch"
            )

    async def visible(self, who: Identity, found: list[Containment]) -> list[Containment]:
        """The containments `who` may see: all for a global admin, else its tenant's."""
        if who.is_global_admin:
            return found
        out = []
        for c in found:
            if c.kind == "adapter" or (c.kind == "tenant" and c.target == who.tenant):
                out.append(c)
            elif c.kind == "identity" and who.is_admin:
                identity = await self.store.get_identity(c.target)
                if identity is not None and identity.tenant == who.tenant:
                    out.append(c)
        return out

    async def lift(self, who: Identity, containment_id: str) -> Containment:
        if not who.is_global_admin:
            mine = await self.visible(who, await self.store.containments(active_only=True))
            # Every tenant sees an adapter's containment; only a global admin lifts it.
            if containment_id not in {c.id for c in mine if c.kind != "adapter"}:
                raise NotFound(f"no active containment `{containment_id}`", code="containment_not_found")
        lifted = await self.store.lift_containment(containment_id, at=now(), by=who.id)
        if lifted is None:
            raise NotFound(f"no active containment `{containment_id}`", code="containment_not_found")
        await self.load()
        return lifted

    async def list(self, *, active_only: bool) -> list[Containment]:
        return await self.store.containments(active_only=active_only)

    async def page(
        self, who: Identity, *, active_only: bool, limit: int, cursor: str | None = None
    ) -> KeysetPage[Containment]:
        """One page of the containments `who` may see, oldest first by (created_at, id): cut
        from the visible ones, so a page is never short because of rows `who` may not see."""
        found = await self.visible(who, await self.list(active_only=active_only))
        return keyset_page(found, key=lambda c: (c.created_at, c.id), limit=limit, cursor=cursor)

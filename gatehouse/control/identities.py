"""Identities: admins create, list and revoke API keys.

A global admin (tenant `*`, or the bootstrap admin) administers every tenant; an admin of one
tenant creates, lists and revokes that tenant's identities alone, and never a global admin.

Revoking a key also withdraws what it asked for and nobody acted on yet (decided once, README
"Revoking a key"): its jobs waiting for approval are cancelled at once, and its queued jobs are
denied by the dispatch gate (rule `identity_revoked`, `Incidents.revoked`). Jobs already handed
to a worker finish, and their output passes the output gate as usual.
"""

from __future__ import annotations

from collections.abc import Sequence

from gatehouse.bus.subjects import IDENTITY_REVOKED
from gatehouse.control.deps import Deps
from gatehouse.control.incidents import REVOKED_RULE_ID, Incidents
from gatehouse.domain import states
from gatehouse.domain.changes import ApprovalUpdate
from gatehouse.domain.identity import GLOBAL_TENANT, Identity, hash_key, new_api_key, validate_scope
from gatehouse.domain.ids import new_id, now
from gatehouse.domain.paging import KeysetPage, keyset_page
from gatehouse.domain.records import DecisionRecord
from gatehouse.errors import Forbidden, NotFound

__all__ = ["Identities"]


def _by_created(i: Identity) -> tuple[float, str]:
    return i.created_at, i.id


class Identities:
    def __init__(self, *, deps: Deps, incidents: Incidents) -> None:
        self.store = deps.store
        self.bus = deps.bus
        self.metrics = deps.metrics
        self.incidents = incidents

    async def create(
        self,
        who: Identity,
        *,
        name: str,
        tenant: str,
        roles: Sequence[str],
        topics: Sequence[str],
        capabilities: Sequence[str],
        rate_limit: str | None,
        adapters: Sequence[str] = (),
    ) -> tuple[Identity, str]:
        """The new identity and its API key: the key is returned here and nowhere else (only its
        hash is stored). The caller checks `rate_limit` is well formed."""
        who.require_role("admin")
        validate_scope(
            name=name, tenant=tenant, roles=roles, topics=topics, capabilities=capabilities, adapters=adapters
        )
        if not who.is_global_admin and tenant != who.tenant:
            what = "a global admin" if tenant == GLOBAL_TENANT else f"an identity in tenant `{tenant}`"
            raise Forbidden(
                f"identity `{who.name}` administers tenant `{who.tenant}` only and cannot create {what}",
                code="tenant_mismatch",
            )
        key = new_api_key()
        identity = Identity(
            id=new_id("idn"),
            name=name,
            tenant=tenant,
            roles=tuple(dict.fromkeys(roles)),
            topics=tuple(topics),
            capabilities=tuple(capabilities),
            created_at=now(),
            created_by=who.id,
            rate_limit=rate_limit,
            adapters=tuple(adapters),
        )
        await self.store.add_identity(identity, hash_key(key))
        return identity, key

    async def list(self, who: Identity, tenant: str | None = None) -> list[Identity]:
        """`who`'s tenant's identities; a global admin's are every tenant's, or those of the
        tenant it acts in (`X-Tenant-ID`)."""
        who.require_role("admin")
        if who.is_global_admin:
            if tenant is not None and tenant != GLOBAL_TENANT:
                return await self.store.list_identities(tenant)
            return await self.store.list_identities(None)
        return [i for i in await self.store.list_identities(who.tenant) if not i.is_global_admin]

    async def page(
        self, who: Identity, tenant: str | None = None, *, limit: int, cursor: str | None = None
    ) -> KeysetPage[Identity]:
        """One page of what `list` shows, oldest first by (created_at, id). The table is small
        and who sees which row is decided here, so the page is cut from the visible rows."""
        return keyset_page(await self.list(who, tenant), key=_by_created, limit=limit, cursor=cursor)

    async def revoke(self, who: Identity, identity_id: str) -> Identity:
        who.require_role("admin")
        target = await self.store.get_identity(identity_id)
        if target is None or not _administers(who, target):
            raise NotFound(f"no identity `{identity_id}`", code="identity_not_found")
        await self.store.revoke_identity(identity_id, now())
        self.incidents.mark_revoked(identity_id)
        await self.bus.publish(IDENTITY_REVOKED, {"id": identity_id})
        await self.withdraw_pending(identity_id)
        revoked = await self.store.get_identity(identity_id)
        assert revoked is not None  # revoking keeps the row
        return revoked

    async def on_revoked(self, data: dict[str, object]) -> None:
        """The `identity.revoked` handler: another replica revoked a key."""
        identity_id = data.get("id")
        if isinstance(identity_id, str):
            self.incidents.mark_revoked(identity_id)

    async def withdraw_pending(self, identity_id: str) -> int:
        """Cancel the revoked identity's jobs that wait for approval (with their requests)."""
        cancelled = 0
        cursor: str | None = None
        while True:
            page = await self.store.list_jobs(None, status=states.PENDING_APPROVAL, limit=500, cursor=cursor)
            for job in page.jobs:
                if job.identity_id != identity_id:
                    continue
                at = now()
                latest = await self.store.latest_approval(job.id)
                record = DecisionRecord(
                    decision_id=new_id("dec"),
                    timestamp=at,
                    result="deny",
                    rule_id=REVOKED_RULE_ID,
                    reason="the submitter's API key was revoked",
                    stage="approval",
                    policy_snapshot=job.policy_snapshot,
                    job_hash=job.job_hash,
                    job_id=job.id,
                    tenant=job.tenant,
                    extra={"approval_event": "withdrawn"},
                )
                update = (
                    ApprovalUpdate(latest.id, "expire")
                    if latest is not None and latest.status == states.APPROVAL_PENDING
                    else None
                )
                moved = await self.store.transition(job.id, "cancel", record=record, at=at, approval=update)
                if moved is not None:
                    cancelled += 1
                    self.metrics.jobs_finished.labels(states.CANCELLED).inc()
            if page.next_cursor is None:
                return cancelled
            cursor = page.next_cursor


def _administers(who: Identity, target: Identity) -> bool:
    """Whether admin `who` may act on identity `target` (a tenant admin: its own tenant's,
    never a global admin's)."""
    if who.is_global_admin:
        return True
    return target.tenant == who.tenant and not target.is_global_admin

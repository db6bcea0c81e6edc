"""Identities: one API key per agent, person or worker, bound to a tenant and a scope."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from gatehouse.errors import BadRequest, Forbidden
from gatehouse.policy.glob import GlobError, compile_glob, compile_target

__all__ = [
    "DEFAULT_TENANT",
    "GLOBAL_TENANT",
    "ROLES",
    "Identity",
    "hash_key",
    "new_api_key",
    "validate_scope",
]

ROLES = ("agent", "approver", "reviewer", "admin", "worker")
# An admin of this "tenant" is a global admin: it acts in any tenant (`X-Tenant-ID`, else
# `DEFAULT_TENANT`). An admin of a real tenant administers that tenant alone.
GLOBAL_TENANT = "*"
DEFAULT_TENANT = "default"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.@:-]{0,127}$")
_TENANT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def new_api_key() -> str:
    return "ghk_" + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    # Keys carry 256 bits of entropy, so a fast hash is enough (no password stretching needed),
    # and it lets authentication stay an indexed lookup.
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Identity:
    id: str
    name: str
    tenant: str
    roles: tuple[str, ...]
    topics: tuple[str, ...]
    capabilities: tuple[str, ...]
    created_at: float
    revoked_at: float | None = None
    created_by: str | None = None
    rate_limit: str | None = None  # "RATE/BURST" per second, overriding the server default
    # Globs over `adapter:action` this identity may call in a step (DESIGN.md section 4); none
    # when empty, every one with `*`.
    adapters: tuple[str, ...] = ()

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    @property
    def is_global_admin(self) -> bool:
        """An admin of every tenant: one created in tenant `*`, or the bootstrap admin (which
        older data directories stored in tenant `default`)."""
        return self.is_admin and (self.tenant == GLOBAL_TENANT or self.created_by == "bootstrap")

    def may_act_in(self, tenant: str) -> bool:
        """Whether this identity may act for `tenant` (its own, or any for a global admin)."""
        return tenant == self.tenant or self.is_global_admin

    @property
    def home_tenant(self) -> str:
        """The tenant a request acts in when it names none."""
        return DEFAULT_TENANT if self.tenant == GLOBAL_TENANT else self.tenant

    def has_role(self, *roles: str) -> bool:
        return any(r in self.roles for r in roles)

    def require_role(
        self,
        *roles: str,
        admin: bool = True,
        message: str | None = None,
        code: str = "missing_role",
    ) -> None:
        """Raise `Forbidden` unless the identity has one of `roles`.

        The one role check of the control plane and the API. An admin passes by default; where
        a person's judgement is the control (approving a job), `admin=False` makes an admin
        need the role like anybody else.
        """
        if self.has_role(*roles) or (admin and self.is_admin):
            return
        raise Forbidden(
            message or f"identity `{self.name}` needs one of the roles {', '.join(roles)}",
            code=code,
        )

    def may_use_topic(self, topic: str) -> bool:
        # Topics have one spelling (lower case) on both sides: `JOB.EXEC.*` scopes `job.exec.x`.
        topic = topic.lower()
        return any(compile_glob(p.lower()).matches(topic) for p in self.topics)

    def may_use_capability(self, capability: str | None) -> bool:
        """Within the capability scope. An identity scoped to some capabilities must say which
        one a job uses: one that leaves it out would otherwise escape every rule that names a
        capability (probe F5: a `job.deploy.apply` without one skipped the approval rule)."""
        if "*" in self.capabilities:
            return True
        if capability is None:
            return False
        return capability.lower() in {c.lower() for c in self.capabilities}

    def may_use_adapter(self, adapter: str, action: str) -> bool:
        target = f"adapter:{adapter}:{action}".lower()
        return any(p == "*" or compile_target(f"adapter:{p.lower()}").matches(target) for p in self.adapters)

    def scopes_adapter(self, adapter: str) -> bool:
        """Whether the adapter scope names `adapter` for some action (its first segment matches)."""
        probe = f"adapter:{adapter.lower()}:_"
        return any(
            p == "*" or compile_target(f"adapter:{p.lower().split(':', 1)[0]}:*").matches(probe)
            for p in self.adapters
        )

    def to_public(self) -> dict[str, object]:
        from gatehouse.domain.ids import rfc3339

        return {
            "id": self.id,
            "name": self.name,
            "tenant": self.tenant,
            "roles": list(self.roles),
            "topics": list(self.topics),
            "capabilities": list(self.capabilities),
            "adapters": list(self.adapters),
            "created_at": rfc3339(self.created_at),
            "revoked_at": rfc3339(self.revoked_at),
            "revoked": self.revoked_at is not None,
            "rate_limit": self.rate_limit,
        }


def validate_scope(
    *,
    name: str,
    tenant: str,
    roles: Iterable[str],
    topics: Iterable[str],
    capabilities: Iterable[str],
    adapters: Iterable[str] = (),
) -> None:
    """Raise `BadRequest` unless the identity fields are well formed."""
    if not _NAME.match(name or ""):
        raise BadRequest(f"bad identity name `{name}`", code="invalid_name")
    roles = list(roles)
    if tenant == GLOBAL_TENANT:
        if "admin" not in roles:
            raise BadRequest("only an admin can belong to tenant `*` (a global admin)", code="invalid_tenant")
    elif not _TENANT.match(tenant or ""):
        raise BadRequest(
            f"bad tenant `{tenant}` (lowercase letters, digits, `_` and `-`)", code="invalid_tenant"
        )
    if not roles:
        raise BadRequest("an identity needs at least one role", code="invalid_roles")
    for r in roles:
        if r not in ROLES:
            raise BadRequest(f"unknown role `{r}` (one of {', '.join(ROLES)})", code="invalid_roles")
    for t in topics:
        try:
            compile_glob(t)
        except GlobError as exc:
            raise BadRequest(str(exc), code="invalid_topics") from None
    for c in capabilities:
        if not isinstance(c, str) or not c or len(c) > 128:
            raise BadRequest(f"bad capability `{c}`", code="invalid_capabilities")
    for a in adapters:
        if not isinstance(a, str) or not a or len(a) > 256:
            raise BadRequest(f"bad adapter glob `{a}`", code="invalid_adapters")
        try:
            if a != "*":
                compile_target(f"adapter:{a}")
        except GlobError as exc:
            raise BadRequest(str(exc), code="invalid_adapters") from None

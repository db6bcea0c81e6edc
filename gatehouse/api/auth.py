"""Authentication over HTTP: the `X-API-Key` (or `Authorization: Bearer`) and `X-Tenant-ID`
headers, handed to the control plane's `Authenticator`; then the caller's rate limits."""

from __future__ import annotations

from fastapi import Request

from gatehouse.control.auth import Authenticator, Principal

__all__ = ["Principal", "authenticate", "rate_limited"]


async def rate_limited(request: Request) -> Principal:
    """`authenticate`, then the caller's token buckets (agent-facing routes)."""
    who = await authenticate(request)
    request.app.state.limiter.check(who.identity.id, who.tenant, who.identity.rate_limit)
    return who


async def authenticate(request: Request) -> Principal:
    headers = request.headers
    key = headers.get("x-api-key")
    if not key:
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            key = auth[7:].strip()
    authenticator: Authenticator = request.app.state.plane.auth
    return await authenticator.authenticate(key, headers.get("x-tenant-id"))

"""Audit: read a tenant's stream, verify the chain (admins and reviewers)."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from gatehouse.api.auth import Principal, authenticate
from gatehouse.api.body import StrictJSONRoute
from gatehouse.api.errors import json_response
from gatehouse.api.offloop import off_loop, on_loop
from gatehouse.api.params import since_param
from gatehouse.audit.events import SYSTEM, stream_for
from gatehouse.audit.verify import verify_store
from gatehouse.domain.identity import Identity
from gatehouse.errors import Forbidden, RateLimited

router = APIRouter(prefix="/api/v1/audit", tags=["audit"], route_class=StrictJSONRoute)
Auth = Annotated[Principal, Depends(authenticate)]


def _stream(who: Principal, stream: str | None) -> str:
    who.require("reviewer")
    wanted = stream or stream_for(who.tenant)
    if wanted != stream_for(who.tenant) and not who.identity.is_global_admin:
        raise Forbidden(f"stream `{wanted}` belongs to another tenant", code="forbidden_stream")
    return wanted


@router.get("")
async def audit_entries(
    request: Request,
    who: Auth,
    since: str | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    stream: str | None = None,
) -> Response:
    name = _stream(who, stream)
    since_seq, since_ts = since_param(since)
    store = request.app.state.store
    await store.seal_audit()  # an export always ends on a signed head, however short the stream
    entries = await store.audit_entries(name, since_seq=since_seq, since_ts=since_ts, limit=limit)
    checkpoints = [
        c.to_dict() for c in await store.audit_checkpoints(name) if not entries or c.seq >= entries[0].seq
    ]
    return json_response(
        {
            "stream": name,
            "entries": [e.to_dict() for e in entries],
            "checkpoints": checkpoints,
            "next_since": str(entries[-1].seq) if len(entries) == limit else None,
            "key": {
                "key_id": request.app.state.plane.signing_key.key_id,
                "pem": request.app.state.plane.signing_key.verify_key.pem().decode(),
            },
        }
    )


@router.get("/streams")
async def audit_streams(request: Request, who: Auth) -> Response:
    """The streams the caller may read: every one for a global admin, its tenant's otherwise."""
    who.require("reviewer")
    if who.identity.is_global_admin:
        names = await request.app.state.store.audit_streams()
    else:
        names = [stream_for(who.tenant)]
    return json_response({"streams": sorted(names)})


@router.get("/verify")
async def audit_verify(request: Request, who: Auth, stream: str | None = None) -> Response:
    who.require("reviewer")
    # A full verification reads and hashes every entry: bounded per identity, one at a time,
    # and hashed on a worker thread so the event loop keeps serving (probe F11).
    limit, running = _verify_guards(request)
    limit.check(who.identity)
    store = request.app.state.store
    streams = None if who.identity.is_global_admin and stream is None else [_stream(who, stream)]
    key = request.app.state.plane.signing_key.verify_key
    async with running:
        reports = await off_loop(verify_store(on_loop(store), {key.key_id: key}, streams))
    return json_response(
        {
            "ok": all(r.ok for r in reports),
            "streams": [r.to_dict() for r in reports],
            "system_stream": SYSTEM,
        }
    )


class _PerIdentity:
    """At most one call per identity every `interval` seconds (429 with `Retry-After`)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}

    def check(self, identity: Identity) -> None:
        now = time.monotonic()
        if len(self._last) > 10_000:
            self._last = {k: t for k, t in self._last.items() if now - t < self.interval}
        wait = self._last.get(identity.id, -self.interval) + self.interval - now
        if wait > 0:
            raise RateLimited(
                f"audit verification runs at most once every {self.interval:g} s per identity",
                retry_after=wait,
                details={"scope": "audit_verify", "retry_after": round(wait, 3)},
            )
        self._last[identity.id] = now


VERIFY_INTERVAL = 10.0


def _verify_guards(request: Request) -> tuple[_PerIdentity, asyncio.Semaphore]:
    state = request.app.state
    if not hasattr(state, "audit_verify_guards"):
        state.audit_verify_guards = (_PerIdentity(VERIFY_INTERVAL), asyncio.Semaphore(1))
    guards: tuple[_PerIdentity, asyncio.Semaphore] = state.audit_verify_guards
    return guards

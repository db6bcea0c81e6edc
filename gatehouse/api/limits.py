"""ASGI middleware: the request body limit (413, before parsing), request ids, and the health-only
surface of a `scheduler` replica."""

from __future__ import annotations

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gatehouse.api.errors import error_response
from gatehouse.audit.events import current_request_id
from gatehouse.domain.ids import new_id

__all__ = ["BodyLimit", "HealthOnly", "RequestId"]

_HEALTH_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


# A body over the limit is still read to its end, up to this many bytes (and at least 16 times
# the limit) and this many seconds, before the 413 goes out. A client that writes its whole body
# before reading (urllib, `requests`, a plain socket) otherwise sees the connection reset: the
# server closes a socket that still holds unread data, the kernel answers with a RST, and the
# client's write fails before it ever reads the 413. Past the bound the client is not worth the
# bandwidth and gets the reset; the bound keeps one request from making the server read forever.
DRAIN_MIN_BYTES = 16 * 1024 * 1024
DRAIN_SECONDS = 5.0


class BodyLimit:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.drain_bytes = max(DRAIN_MIN_BYTES, 16 * max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await self._reject(scope, receive, send, received=0)
                    return
        seen = 0
        started = False
        too_large = False

        async def limited() -> Message:
            nonlocal seen, too_large
            if too_large:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # Stop feeding the app; whatever it answers is replaced by the 413 below
                    # (frameworks turn a raised error during body reading into a 400).
                    too_large = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if too_large:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited, guarded_send)
        except Exception:
            if not too_large:
                raise
        if too_large and not started:
            await self._reject(scope, receive, send, received=seen)

    async def _reject(self, scope: Scope, receive: Receive, send: Send, *, received: int) -> None:
        if not _expects_continue(scope):
            # A client that asked `Expect: 100-continue` has not sent its body and will not once
            # it reads the 413; any other is sending it now (see DRAIN_MIN_BYTES).
            await self._drain(receive, received)
        response = error_response(
            413,
            "payload_too_large",
            f"the request body is larger than {self.max_bytes} bytes",
            {"max_bytes": self.max_bytes},
        )
        await response(scope, receive, send)

    async def _drain(self, receive: Receive, received: int) -> None:
        with anyio.move_on_after(DRAIN_SECONDS):
            while received <= self.drain_bytes:
                message = await receive()
                if message["type"] != "http.request":
                    return
                received += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return


def _expects_continue(scope: Scope) -> bool:
    return any(
        name == b"expect" and value.lower() == b"100-continue" for name, value in scope.get("headers", ())
    )


class RequestId:
    """Give every request an id (the caller's `X-Request-ID` if sane), echoed in the response
    and stamped on the audit entries the request causes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = None
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                text = value.decode("latin-1")
                if 0 < len(text) <= 128 and text.isprintable():
                    rid = text
        rid = rid or new_id("req")
        current_request_id.set(rid)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode("latin-1"))]
            await send(message)

        await self.app(scope, receive, send_with_id)


class HealthOnly:
    """A replica that does not serve the API (`--role scheduler`) answers health and metrics
    only; anything else is a 404 that says where to go instead."""

    def __init__(self, app: ASGIApp, *, role: str) -> None:
        self.app = app
        self.role = role

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" or scope.get("path") in _HEALTH_PATHS:
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            return  # a websocket on a replica without the API: refused by not accepting it
        response = error_response(
            404,
            "not_served",
            f"this replica runs the `{self.role}` role and does not serve the API: send requests to "
            "an `api` or `all` replica",
            {"role": self.role},
        )
        await response(scope, receive, send)

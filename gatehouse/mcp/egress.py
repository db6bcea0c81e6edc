"""Egress for streamable-HTTP upstreams: every request the SDK's client sends to a `url:`
upstream passes the adapter's `egress` list first (the broker's checks, `broker.egress`).

`EgressTransport` sits under the SDK's `httpx2` client. For each request (the POSTs, the SSE
GET, the DELETE that ends a session, a same-origin redirect the SDK follows): the URL's scheme,
host and port must match an entry; the host is resolved once and every address it resolved to
must be allowed (loopback, private, link-local... only when an entry names it); the request then
goes to the address that was checked, with `Host` and TLS SNI kept as the original host, so no
second lookup can land elsewhere (DNS rebinding). A refusal is `EgressDenied` (`egress_denied`),
counted in `gatehouse_egress_denied_total{adapter}` and logged; it is raised before a byte — and
so the adapter's credential header — leaves.

A per-request credential (`credential`, for an adapter whose tokens are minted per call) is asked
for only once the request has passed that check, so a refused request never had one minted.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence

import httpx2

from gatehouse.broker.egress import (
    EgressDenied,
    EgressEntry,
    check_addresses,
    destination,
    match_destination,
)
from gatehouse.broker.requests import check_header_value
from gatehouse.broker.transport import Resolver, SystemResolver

__all__ = ["EgressTransport"]

log = logging.getLogger("gatehouse.mcp")


class EgressTransport(httpx2.AsyncBaseTransport):
    def __init__(
        self,
        adapter: str,
        entries: Sequence[EgressEntry],
        *,
        resolver: Resolver | None = None,
        on_denied: Callable[[str, EgressDenied], None] | None = None,
        credential: Callable[[httpx2.Request], Awaitable[Mapping[str, str]]] | None = None,
    ) -> None:
        self.adapter = adapter
        self.credential = credential
        self.entries = tuple(entries)
        self.resolver = resolver or SystemResolver()
        self.on_denied = on_denied
        # trust_env off: no proxy or certificate bundle from the environment changes where or
        # how the gateway connects.
        self._inner = httpx2.AsyncHTTPTransport(trust_env=False)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        url = request.url
        scheme = url.scheme
        try:
            dest = destination(scheme, url.host, url.port)
            match_destination(dest, self.entries)
            # An IP literal is its own answer (no lookup, no thread hop); a name is resolved once.
            found = [dest.host] if dest.ip is not None else await self.resolver.resolve(dest.host)
            address = check_addresses(dest, found, self.entries)
        except EgressDenied as exc:
            log.warning("MCP upstream %s: egress denied: %s", self.adapter, exc.message)
            if self.on_denied is not None:
                self.on_denied(self.adapter, exc)
            raise
        except Exception as exc:  # an unresolvable name: the SDK reports a connection error
            raise httpx2.ConnectError(str(exc)[:300], request=request) from None
        headers = httpx2.Headers(request.headers)
        if self.credential is not None:
            for name, value in (await self.credential(request)).items():
                check_header_value(name, value)
                headers[name] = value
        if "host" not in headers:
            headers["Host"] = url.netloc.decode("ascii")
        extensions = dict(request.extensions)
        if scheme == "https":
            extensions["sni_hostname"] = dest.host
        pinned = httpx2.Request(
            request.method,
            url.copy_with(host=address),
            headers=headers,
            stream=request.stream,
            extensions=extensions,
        )
        response = await self._inner.handle_async_request(pinned)
        response.request = request
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()

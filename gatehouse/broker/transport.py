"""Egress on the wire: resolve once, check, connect to the address checked, follow redirects
one checked hop at a time, read a bounded answer in bounded time.

    fetch(request, entries, transport=..., resolver=..., limits=...)
      for each hop (the request, then at most `limits.max_redirects` redirects):
        egress.match_destination(url)        scheme, host and port against the entries
        resolver.resolve(host)               once per hop (an IP literal is not resolved)
        egress.check_addresses(...)          every address allowed -> the one to connect to
        PinnedTransport.send(...)            connect to that address; TLS SNI, certificate
                                             check and `Host` keep the original host
      the final answer's body read up to `limits.max_bytes`, all of it within `limits.timeout`

Connecting to the checked address: the request goes out with its URL's host replaced by the
address, its `Host` header left as it was, and httpcore's `sni_hostname` extension set to the
original host, so the TLS handshake sends it as SNI and checks the certificate against it. No
second lookup happens anywhere (httpcore connects to an IP literal as it is), so a name that
answers a public address to the check and a private one to the connect cannot slip through.
Connections are pooled per original origin (a TLS session authenticated for one host is never
reused for another), and within it per address.

Errors: `EgressDenied` (403, `egress_denied`) for a destination or address the entries refuse
and for a fourth redirect; `ResponseTooLarge` (502, `response_too_large`), `UpstreamTimeout`
(504, `upstream_timeout`) and `UpstreamUnreachable` (502, `upstream_unreachable`) otherwise.
None of them carries a header or a body of the request: they may hold a secret.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from gatehouse.broker.egress import (
    Destination,
    EgressDenied,
    EgressEntry,
    check_addresses,
    destination,
    match_destination,
)
from gatehouse.errors import Upstream, UpstreamTimeout
from gatehouse.metrics import Metrics

__all__ = [
    "EgressLimits",
    "Fetched",
    "PinnedTransport",
    "Resolver",
    "ResponseTooLarge",
    "SystemResolver",
    "UpstreamUnreachable",
    "fetch",
]

MiB = 1024 * 1024
_REDIRECTS = {301, 302, 303, 307, 308}
# Headers that carry a credential: dropped when a redirect leaves the origin, so a secret the
# broker injected for one service never reaches another.
SENSITIVE_HEADERS = ("authorization", "proxy-authorization", "cookie")


class ResponseTooLarge(Upstream):
    code = "response_too_large"


class UpstreamUnreachable(Upstream):
    code = "upstream_unreachable"


class Resolver(Protocol):
    """Names to addresses: the seam tests use to make a name resolve to anything."""

    async def resolve(self, host: str) -> list[str]: ...


class SystemResolver:
    """The system resolver, off the event loop (`loop.getaddrinfo`)."""

    async def resolve(self, host: str) -> list[str]:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise UpstreamUnreachable(f"cannot resolve `{host}`: {exc}", details={"host": host}) from None
        seen: dict[str, None] = {}
        for info in infos:
            seen.setdefault(str(info[4][0]).split("%")[0], None)  # no IPv6 zone ids
        return list(seen)


@dataclass(frozen=True, slots=True, kw_only=True)
class EgressLimits:
    max_bytes: int = 10 * MiB
    timeout: float = 30.0  # the whole fetch: resolution, connects, redirects and the body
    max_redirects: int = 3


@dataclass(frozen=True, slots=True)
class Fetched:
    status_code: int
    headers: httpx.Headers
    content: bytes
    url: httpx.URL  # the last URL asked (after redirects)
    address: str  # the address the last hop connected to
    redirects: tuple[str, ...] = field(default=())


class PinnedTransport:
    """Sends a request to an address decided beforehand. Long-lived; `aclose` at the end."""

    def __init__(
        self, *, verify: ssl.SSLContext | bool = True, max_origins: int = 32, retries: int = 0
    ) -> None:
        self._verify = verify
        self._retries = retries
        self._max_origins = max_origins
        self._pools: OrderedDict[tuple[str, str, int], httpx.AsyncHTTPTransport] = OrderedDict()

    def _pool(self, dest: Destination) -> tuple[httpx.AsyncHTTPTransport, httpx.AsyncHTTPTransport | None]:
        key = (dest.scheme, dest.host, dest.port)
        pool = self._pools.get(key)
        evicted = None
        if pool is None:
            # trust_env off: no proxy or certificate bundle from the environment changes where
            # or how the broker connects.
            pool = httpx.AsyncHTTPTransport(verify=self._verify, trust_env=False, retries=self._retries)
            self._pools[key] = pool
            if len(self._pools) > self._max_origins:
                _, evicted = self._pools.popitem(last=False)
        else:
            self._pools.move_to_end(key)
        return pool, evicted

    async def send(
        self, request: httpx.Request, dest: Destination, address: str, *, timeout: httpx.Timeout
    ) -> httpx.Response:
        pinned = request.url.copy_with(host=address)
        extensions = {**request.extensions, "timeout": timeout.as_dict()}
        if dest.scheme == "https":
            extensions["sni_hostname"] = dest.host
        # The headers as the caller built them, `Host` (the original host) included: httpx
        # adds it only to a request built without a stream.
        headers = httpx.Headers(request.headers)
        if "host" not in headers:
            headers["Host"] = request.url.netloc.decode("ascii")
        wire = httpx.Request(
            request.method, pinned, headers=headers, stream=request.stream, extensions=extensions
        )
        pool, evicted = self._pool(dest)
        if evicted is not None:
            await evicted.aclose()
        response = await pool.handle_async_request(wire)
        response.request = request
        return response

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), OrderedDict()
        for pool in pools:
            await pool.aclose()


def _destination(url: httpx.URL) -> Destination:
    if url.userinfo:
        raise EgressDenied("a URL with a user name or password is not sent", reason="bad_url")
    try:
        host = url.raw_host.decode("ascii")
    except UnicodeDecodeError:
        raise EgressDenied("the URL's host is not ASCII", reason="bad_url") from None
    return destination(url.scheme, host, url.port)


def _redirect(request: httpx.Request, response: httpx.Response) -> httpx.Request:
    """The next hop's request, as httpx would build it, minus what must not travel: credential
    headers across origins, and the body when the method turns into GET."""
    location = response.headers.get("location", "")
    try:
        url = request.url.join(location)
    except httpx.InvalidURL:
        raise EgressDenied("the redirect's `Location` is not a URL", reason="bad_url") from None
    method = request.method
    status = response.status_code
    if (status in (302, 303) and method != "HEAD") or (status == 301 and method == "POST"):
        method = "GET"
    headers = httpx.Headers(request.headers)
    headers["Host"] = url.netloc.decode("ascii")
    if (url.scheme, url.host, url.port) != (request.url.scheme, request.url.host, request.url.port):
        for name in SENSITIVE_HEADERS:
            headers.pop(name, None)
    stream = request.stream
    if method != request.method:
        headers.pop("content-length", None)
        headers.pop("transfer-encoding", None)
        stream = httpx.ByteStream(b"")
    return httpx.Request(method, url, headers=headers, stream=stream, extensions=request.extensions)


async def _read(response: httpx.Response, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise ResponseTooLarge(
            f"the response declares {int(declared)} bytes, over the bound of {max_bytes}",
            details={"max_bytes": max_bytes},
        )
    chunks: list[bytes] = []
    size = 0
    # Decoded bytes are what the caller keeps: a compressed body counts at its full size.
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise ResponseTooLarge(
                f"the response is over the bound of {max_bytes} bytes (cut off)",
                details={"max_bytes": max_bytes},
            )
        chunks.append(chunk)
    return b"".join(chunks)


async def _hops(
    request: httpx.Request,
    entries: Sequence[EgressEntry],
    transport: PinnedTransport,
    resolver: Resolver,
    limits: EgressLimits,
    timeout: httpx.Timeout,
) -> Fetched:
    redirects: list[str] = []
    while True:
        dest = _destination(request.url)
        match_destination(dest, entries)
        addresses = [dest.host] if dest.ip is not None else await resolver.resolve(dest.host)
        address = check_addresses(dest, addresses, entries)
        response = await transport.send(request, dest, address, timeout=timeout)
        try:
            if response.status_code in _REDIRECTS and "location" in response.headers:
                if len(redirects) >= limits.max_redirects:
                    raise EgressDenied(
                        f"more than {limits.max_redirects} redirects", reason="too_many_redirects",
                        redirects=len(redirects) + 1,
                    )  # fmt: skip
                request = _redirect(request, response)
                redirects.append(str(request.url))
                continue
            content = await _read(response, limits.max_bytes)
        finally:
            await response.aclose()
        return Fetched(
            status_code=response.status_code,
            headers=response.headers,
            content=content,
            url=request.url,
            address=address,
            redirects=tuple(redirects),
        )


async def fetch(
    request: httpx.Request,
    entries: Sequence[EgressEntry],
    *,
    transport: PinnedTransport,
    resolver: Resolver | None = None,
    limits: EgressLimits = EgressLimits(),
    adapter: str = "",
    metrics: Metrics | None = None,
    on_denied: Callable[[EgressDenied], None] | None = None,
) -> Fetched:
    """Send `request` under the egress `entries`, re-checking every redirect (never followed
    blindly); the answer whose status is not a redirect, its body read within the bounds."""
    timeout = httpx.Timeout(limits.timeout)
    try:
        async with asyncio.timeout(limits.timeout):
            return await _hops(request, entries, transport, resolver or SystemResolver(), limits, timeout)
    except EgressDenied as exc:
        if metrics is not None:
            metrics.egress_denied.labels(adapter).inc()
        if on_denied is not None:
            on_denied(exc)
        raise
    except (TimeoutError, httpx.TimeoutException):
        raise UpstreamTimeout(
            f"the upstream did not answer within {limits.timeout:g}s",
            details={"timeout": limits.timeout},
        ) from None  # fmt: skip
    except httpx.TransportError as exc:
        raise UpstreamUnreachable(
            f"cannot reach the upstream: {type(exc).__name__}: {exc}"[:300],
            details={"url": f"{request.url.scheme}://{request.url.netloc.decode('ascii', 'replace')}"},
        ) from None

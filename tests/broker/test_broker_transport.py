"""Egress on the wire, against real loopback servers that count their connections: every
refusal happens before anything is sent, and what was checked is what is reached."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

import httpx
import pytest
from upstream_server import Upstream

from gatehouse.broker.egress import EgressDenied, parse_egress
from gatehouse.broker.transport import EgressLimits, PinnedTransport, ResponseTooLarge, SystemResolver, fetch
from gatehouse.errors import UpstreamTimeout
from gatehouse.metrics import Metrics

pytestmark = pytest.mark.anyio


class FakeResolver:
    """Answers from a table; a list of answers per name is served one per call (a rebinding
    name answers differently the second time)."""

    def __init__(self, table: dict[str, Sequence[list[str]]]) -> None:
        self.table = {k: list(v) for k, v in table.items()}
        self.calls: list[str] = []

    async def resolve(self, host: str) -> list[str]:
        self.calls.append(host)
        answers = self.table[host]
        return answers.pop(0) if len(answers) > 1 else answers[0]


def entries(*texts: str) -> list:
    return [parse_egress(t) for t in texts]


async def get(url: str, allowed: list, transport: PinnedTransport, **kw):
    return await fetch(httpx.Request("GET", url), allowed, transport=transport, **kw)


async def test_an_unlisted_host_is_refused_before_any_connection(upstream: Upstream, transport) -> None:
    resolver = FakeResolver({"evil.example": [["127.0.0.1"]]})
    metrics = Metrics()
    with pytest.raises(EgressDenied) as caught:
        await get(f"http://evil.example:{upstream.port}/ok", entries("https://api.example.com"), transport,
                  resolver=resolver, adapter="web", metrics=metrics)  # fmt: skip
    assert caught.value.details["reason"] == "unlisted_destination"
    assert upstream.connections == 0 and resolver.calls == []  # not even resolved
    assert metrics.egress_denied.labels("web")._value.get() == 1


async def test_an_ip_literal_is_refused(upstream: Upstream, transport) -> None:
    allowed = entries(f"http://upstream.test:{upstream.port}")
    with pytest.raises(EgressDenied) as caught:
        await get(f"http://127.0.0.1:{upstream.port}/ok", allowed, transport)
    assert caught.value.details["reason"] == "ip_literal"
    assert upstream.connections == 0


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.7", "169.254.169.254", "::ffff:127.0.0.1"])
async def test_a_listed_name_resolving_to_a_private_address_is_refused(
    upstream: Upstream, transport, address: str
) -> None:
    resolver = FakeResolver({"upstream.test": [[address]]})
    allowed = entries(f"http://upstream.test:{upstream.port}")
    with pytest.raises(EgressDenied) as caught:
        await get(f"http://upstream.test:{upstream.port}/ok", allowed, transport, resolver=resolver)
    assert caught.value.details["reason"] == "blocked_address"
    assert caught.value.details["address"] == address
    assert upstream.connections == 0


async def test_an_explicitly_listed_loopback_address_is_reached(upstream: Upstream, transport) -> None:
    allowed = entries(f"http://127.0.0.1:{upstream.port}")
    got = await get(f"http://127.0.0.1:{upstream.port}/ok", allowed, transport)
    assert (got.status_code, got.content, got.address) == (200, b"ok", "127.0.0.1")
    assert upstream.connections == 1


async def test_a_name_is_connected_to_its_checked_address_with_its_own_host_header(
    upstream: Upstream, transport
) -> None:
    resolver = FakeResolver({"api.upstream.test": [["127.0.0.1"]]})
    allowed = entries(f"http://*.upstream.test:{upstream.port}", "127.0.0.1/32")
    got = await get(
        f"http://api.upstream.test:{upstream.port}/headers", allowed, transport, resolver=resolver
    )
    seen = json.loads(got.content)
    assert seen["headers"]["host"] == f"api.upstream.test:{upstream.port}"
    assert upstream.connections == 1 and resolver.calls == ["api.upstream.test"]


async def test_dns_rebinding_cannot_move_the_connection(
    upstream: Upstream, other_upstream: Upstream, transport
) -> None:
    # The name answers an allowed address to the check and loopback (the "internal" service on
    # 127.0.0.1) to any second lookup. The broker looks up once and connects where it checked.
    allowed_server = await Upstream(host="127.0.0.2").start()
    try:
        port = allowed_server.port
        internal = await Upstream(host="127.0.0.1", port=0).start()
        try:
            resolver = FakeResolver({"rebind.test": [["127.0.0.2"], ["127.0.0.1"], ["127.0.0.1"]]})
            allowed = entries(f"http://rebind.test:{port}", "127.0.0.2/32")
            got = await get(f"http://rebind.test:{port}/ok", allowed, transport, resolver=resolver)
            assert got.address == "127.0.0.2" and got.content == b"ok"
            assert allowed_server.connections == 1 and internal.connections == 0
            assert resolver.calls == ["rebind.test"]  # resolved exactly once
            # The next call resolves again, sees loopback and is refused before connecting.
            with pytest.raises(EgressDenied):
                await get(f"http://rebind.test:{port}/ok", allowed, transport, resolver=resolver)
            assert allowed_server.connections == 1 and internal.connections == 0
        finally:
            await internal.stop()
    finally:
        await allowed_server.stop()


async def test_a_redirect_to_an_unlisted_host_is_refused_before_contacting_it(
    upstream: Upstream, other_upstream: Upstream, transport
) -> None:
    allowed = entries(f"http://127.0.0.1:{upstream.port}")
    target = f"http://127.0.0.1:{other_upstream.port}/ok"
    with pytest.raises(EgressDenied) as caught:
        await get(f"{upstream.origin}/redirect?to={target}", allowed, transport)
    assert caught.value.details["reason"] == "ip_literal"
    assert upstream.connections == 1 and other_upstream.connections == 0


async def test_a_redirect_to_a_listed_place_is_followed_and_credentials_stay_home(
    upstream: Upstream, other_upstream: Upstream, transport
) -> None:
    allowed = entries(f"http://127.0.0.1:{upstream.port}", f"http://127.0.0.1:{other_upstream.port}")
    request = httpx.Request(
        "GET",
        f"{upstream.origin}/redirect?to={other_upstream.origin}/headers",
        headers={"Authorization": "Bearer s3cr3t", "X-Trace": "1"},
    )
    got = await fetch(request, allowed, transport=transport)
    seen = json.loads(got.content)["headers"]
    assert "authorization" not in seen and seen["x-trace"] == "1"
    assert seen["host"] == f"127.0.0.1:{other_upstream.port}"
    assert upstream.requests[0]["headers"]["authorization"] == "Bearer s3cr3t"
    assert got.redirects == (f"{other_upstream.origin}/headers",)


async def test_three_redirects_are_followed_and_a_fourth_is_refused(upstream: Upstream, transport) -> None:
    allowed = entries(f"http://127.0.0.1:{upstream.port}")
    got = await get(f"{upstream.origin}/chain/3", allowed, transport)
    assert got.content == b"done" and len(got.redirects) == 3
    before = upstream.connections
    with pytest.raises(EgressDenied) as caught:
        await get(f"{upstream.origin}/chain/4", allowed, transport)
    assert caught.value.details["reason"] == "too_many_redirects"
    assert upstream.connections - before == 4  # the fourth redirect's target never asked


@pytest.mark.parametrize("declared", ["0", "1"])
async def test_a_50_mib_response_is_cut_off(upstream: Upstream, transport, declared: str) -> None:
    allowed = entries(f"http://127.0.0.1:{upstream.port}")
    with pytest.raises(ResponseTooLarge) as caught:
        await get(f"{upstream.origin}/big?mib=50&declared={declared}", allowed, transport)
    assert caught.value.code == "response_too_large"
    assert "10485760" in caught.value.message
    # Cut off early: the server got nowhere near sending 50 MiB.
    assert upstream.bytes_sent < 30 * 1024 * 1024


async def test_a_slow_upstream_is_timed_out(upstream: Upstream, transport) -> None:
    allowed = entries(f"http://127.0.0.1:{upstream.port}")
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout) as caught:
        await get(f"{upstream.origin}/slow?seconds=5", allowed, transport, limits=EgressLimits(timeout=0.5))
    assert caught.value.code == "upstream_timeout"
    assert time.monotonic() - started < 2


async def test_bad_urls_are_refused() -> None:
    transport = PinnedTransport()
    allowed = entries("https://api.example.com")
    for url in ("https://user:pw@api.example.com/", "ftp://api.example.com/"):
        with pytest.raises(EgressDenied) as caught:
            await get(url, allowed, transport)
        assert caught.value.details["reason"] == "bad_url"
    await transport.aclose()


async def test_the_system_resolver_resolves_localhost() -> None:
    assert "127.0.0.1" in await SystemResolver().resolve(
        "localhost"
    ) or "::1" in await SystemResolver().resolve("localhost")

"""Odd numbers are 400s and 422s with codes, never a 500 (probe F7): integers past 64 bits,
Unicode digits, overflowing cursors and serials."""

from __future__ import annotations

import base64

import pytest
from harness import SEED, Server


@pytest.mark.parametrize(
    "since",
    [
        "9223372036854775808",
        "99999999999999999999999999999",
        "²",
        "①",
        "\u0661\u0662",
        "1" + "0" * 400 + "s",
        "²h",
    ],
)
def test_audit_since_out_of_range_or_not_ascii_is_400(server: Server, since: str) -> None:
    reviewer = server.identity("odd-reviewer-" + str(abs(hash(since)) % 10**8), roles=["reviewer"])
    with server.client(reviewer["api_key"]) as c:
        r = c.get("/api/v1/audit", params={"since": since})
        assert r.status_code in (400, 422), r.text
        assert r.json()["error"]["code"] == "invalid_since"
        # The connection was not reset: the next request on it is answered.
        assert c.get("/api/v1/audit", params={"since": "0"}).status_code == 200


def test_the_probe_urls_verbatim(server: Server) -> None:
    reviewer = server.identity("odd-rv", roles=["reviewer"])
    agent = server.identity("odd-ag", roles=["agent"])
    with server.client(reviewer["api_key"]) as c:
        for query in ("since=9223372036854775808", "since=%C2%B2", "since=%E2%91%A0"):
            r = c.get("/api/v1/audit?" + query)
            assert r.status_code in (400, 422), (query, r.text)
            assert r.json()["error"]["code"] == "invalid_since"
        r = c.get("/api/v1/decisions?since=%C2%B2")
        assert r.status_code in (400, 422) and r.json()["error"]["code"] == "invalid_since"
    with server.client(agent["api_key"]) as c:
        r = c.get("/api/v1/jobs?cursor=czkyMjMzNzIwMzY4NTQ3NzU4MDg")  # base64 of s9223372036854775808
        assert r.status_code in (400, 422), r.text
        assert r.json()["error"]["code"] == "invalid_cursor"


@pytest.mark.parametrize("raw", ["s9223372036854775808", "s" + "9" * 40, "s²", "s\u0661\u0662", "s-1"])
def test_overflowing_or_odd_cursors_are_400(server: Server, raw: str) -> None:
    cursor = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
    with server.admin() as c:
        for path in ("/api/v1/jobs", "/api/v1/decisions"):
            r = c.get(path, params={"cursor": cursor})
            assert r.status_code in (400, 422), (path, r.text)
            assert r.json()["error"]["code"] == "invalid_cursor"


@pytest.mark.parametrize("serial", [2**63, 2**64 - 1, -1])
def test_a_serial_past_64_bits_is_refused_with_a_code(server: Server, serial: int) -> None:
    body = {"bundle": SEED.read_text(), "signature": {"key_id": "k", "serial": serial, "sig": "x"}}
    with server.admin() as c:
        r = c.put("/api/v1/policy", json=body)
        assert r.status_code in (400, 422), r.text
        assert r.json()["error"]["code"].startswith("invalid_") or r.json()["error"]["code"].endswith(
            "signature"
        )
        assert c.get("/api/v1/policy").status_code == 200


def test_odd_numbers_in_bodies_are_never_500(server: Server) -> None:
    with server.admin() as c:
        for body in (
            b'{"name": "x", "roles": ["agent"], "rate_limit": "nan"}',
            b'{"name": "x", "roles": ["agent"], "rate_limit": "1e999/5"}',
            b'{"topic": "job.demo.echo", "meta": {"n": 1' + b"0" * 40 + b"}}",
            b'{"topics": ["job.**"], "max_jobs": 1' + b"0" * 30 + b"}",
        ):
            path = "/api/v1/identities" if b"name" in body else "/api/v1/worker/lease"
            if b"job.demo.echo" in body:
                path = "/api/v1/policy/simulate"
            r = c.post(path, content=body)
            assert r.status_code < 500, (body, r.status_code, r.text)
            if b"rate_limit" in body:
                assert r.json()["error"]["code"] == "invalid_rate_limit", r.text

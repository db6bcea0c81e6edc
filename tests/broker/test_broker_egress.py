"""The pure egress policy: entries parsed, destinations matched, addresses judged."""

from __future__ import annotations

import ipaddress

import pytest

from gatehouse.broker.egress import (
    EgressDenied,
    address_problem,
    check_addresses,
    destination,
    match_destination,
    parse_egress,
)


def entries(*texts: str) -> list:
    return [parse_egress(t) for t in texts]


def test_the_broker_reads_entries_with_the_catalogs_reader() -> None:
    # One reader of an egress entry for the loader and the broker: what the catalog accepted is
    # what the broker enforces.
    from gatehouse.policy import catalog

    assert parse_egress is catalog.parse_egress
    e = parse_egress("https://[::1]:8443")
    assert e.network == ipaddress.ip_network("::1/128") and e.port == 8443


@pytest.mark.parametrize(
    "text",
    [
        "",
        "api.github.com",  # no scheme
        "ftp://files.example.com",
        "https://api.github.com/repos",  # a path
        "https://user@api.github.com",
        "https://api.github.com:0",
        "https://api.github.com:99999",
        "https://api.github.com:x",
        "https://*",
        "https://*.com",
        "https://a..b",
        "https://-bad.example.com",
        "https://exa mple.com",
        "https://[127.0.0.1]",
        "10.0.0.1/8",  # host bits set
        "10.0.0.0/33",
        "https://api.github.com?x=1",
    ],
)
def test_bad_entries_are_refused_with_the_reason(text: str) -> None:
    with pytest.raises(ValueError, match=r"egress entry|non-empty"):
        parse_egress(text)


def dest(url_scheme: str, host: str, port: int | None = None):
    return destination(url_scheme, host, port)


def test_destinations_match_scheme_host_and_port() -> None:
    allowed = entries("https://api.github.com", "https://*.example.com:8443", "http://svc.internal:8080")
    assert match_destination(dest("https", "API.github.com."), allowed).text == "https://api.github.com"
    assert match_destination(dest("https", "a.b.example.com", 8443), allowed).wildcard
    for scheme, host, port in [
        ("http", "api.github.com", None),  # scheme differs
        ("https", "api.github.com", 8443),  # port differs
        ("https", "example.com", 8443),  # the wildcard's domain itself
        ("https", "evil-example.com", 8443),
        ("https", "api.github.com.evil.net", None),
        ("http", "svc.internal", 80),
    ]:
        with pytest.raises(EgressDenied) as caught:
            match_destination(dest(scheme, host, port), allowed)
        assert caught.value.code == "egress_denied"
        assert caught.value.details["reason"] == "unlisted_destination"


def test_an_ip_literal_matches_only_an_entry_naming_it() -> None:
    named = entries("https://api.github.com", "http://127.0.0.1:9000", "10.1.0.0/16")
    with pytest.raises(EgressDenied) as caught:
        match_destination(dest("https", "140.82.112.6"), named)
    assert caught.value.details["reason"] == "ip_literal"
    assert match_destination(dest("http", "127.0.0.1", 9000), named).port == 9000
    with pytest.raises(EgressDenied):
        match_destination(dest("http", "127.0.0.1", 9001), named)
    assert match_destination(dest("https", "10.1.2.3", 4443), named).network is not None
    with pytest.raises(EgressDenied):
        match_destination(dest("https", "10.2.0.1"), named)
    with pytest.raises(EgressDenied) as bad:
        dest("file", "x")
    assert bad.value.details["reason"] == "bad_url"


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("169.254.1.1", "link_local"),
        ("fe80::1", "link_local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "not_global"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("64:ff9b::a9fe:a9fe", "metadata"),  # NAT64 of 169.254.169.254
        ("2002:7f00:1::1", "loopback"),  # 6to4 of 127.0.0.1
        ("192.0.2.1", "private"),  # documentation range
    ],
)
def test_non_public_addresses_are_named(address: str, kind: str) -> None:
    assert address_problem(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize("address", ["8.8.8.8", "140.82.112.6", "2001:4860:4860::8888"])
def test_public_addresses_pass(address: str) -> None:
    assert address_problem(ipaddress.ip_address(address)) is None


def test_every_resolved_address_must_be_allowed() -> None:
    allowed = entries("https://api.example.com", "10.9.0.0/16")
    d = dest("https", "api.example.com")
    assert check_addresses(d, ["93.184.216.34"], allowed) == "93.184.216.34"
    # One private answer among public ones is refused, whichever comes first.
    for answer in (["93.184.216.34", "127.0.0.1"], ["169.254.169.254", "93.184.216.34"]):
        with pytest.raises(EgressDenied) as caught:
            check_addresses(d, answer, allowed)
        assert caught.value.details["reason"] == "blocked_address"
    # A private address that an entry names explicitly is allowed.
    assert check_addresses(d, ["10.9.1.1"], allowed) == "10.9.1.1"
    with pytest.raises(EgressDenied) as empty:
        check_addresses(d, [], allowed)
    assert empty.value.details["reason"] == "unresolvable"
    with pytest.raises(EgressDenied):
        check_addresses(d, ["not-an-ip"], allowed)

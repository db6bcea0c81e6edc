"""Egress policy, pure: which destinations an adapter may reach, and which addresses it may
connect to. No I/O here; `broker.transport` resolves names and connects.

Theory of operation. An adapter lists its destinations as egress entries (read by the
catalog's `parse_egress`, the one reader of an entry for the loader and the broker alike):

- `scheme://host[:port]`: `http` or `https`, the port defaulting to the scheme's; the host a DNS
  name (exact), `*.domain` (any name under `domain`, not `domain` itself) or an IP literal
  (`https://10.0.0.5:8443`, `http://[::1]:8080`);
- a bare IP address or CIDR network (`127.0.0.1`, `10.20.0.0/16`): names addresses, on any
  port of `http` or `https`.

A URL passes in two steps. `match_destination` asks whether its scheme, host and port match an
entry (an IP literal host matches only an entry that names that address or a network holding
it: a public IP is no way round a list of names). Then the broker resolves the host once, and
`check_addresses` asks whether *every* address it resolved to may be reached: a public address
may, while loopback, private (RFC 1918, ULA), shared (CGNAT), link-local (the cloud metadata
service at 169.254.169.254 among them), multicast, unspecified and reserved addresses are
refused unless an entry names that address or a network holding it. The answer is the address
to connect to, so what was checked is what is reached (no DNS rebinding in between).

Every refusal raises `EgressDenied` (code `egress_denied`) with a machine-readable `reason`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from gatehouse.errors import Forbidden
from gatehouse.policy.catalog import EgressEntry, EgressError, parse_egress

__all__ = [
    "DEFAULT_PORTS",
    "Destination",
    "EgressDenied",
    "EgressEntry",
    "EgressError",
    "IPAddress",
    "IPNetwork",
    "address_problem",
    "check_addresses",
    "match_destination",
    "parse_egress",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_PORTS = {"http": 80, "https": 443}

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_METADATA = {ipaddress.IPv4Address("169.254.169.254"), ipaddress.IPv6Address("fd00:ec2::254")}


class EgressDenied(Forbidden):
    """A destination or an address the adapter's egress entries do not allow (403).

    `details` carries `reason` (`unlisted_destination`, `ip_literal`, `blocked_address`,
    `bad_url`, `too_many_redirects`, `unresolvable`) and, where known, the `host` and
    `address`."""

    code = "egress_denied"

    def __init__(self, message: str, *, reason: str, **details: object) -> None:
        super().__init__(message, details={"reason": reason, **details})
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a URL points, as the broker will reach it."""

    scheme: str
    host: str  # lower case, no trailing dot; an IPv6 literal without brackets
    port: int
    ip: IPAddress | None  # the host when it is an IP literal

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if self.ip is not None and self.ip.version == 6 else self.host
        return host if DEFAULT_PORTS.get(self.scheme) == self.port else f"{host}:{self.port}"


def _ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def normalise_host(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host[:-1] if host.endswith(".") else host


def destination(scheme: str, host: str, port: int | None) -> Destination:
    """A URL's scheme, host and port, normalised (`port` None: the scheme's default)."""
    scheme = scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise EgressDenied(f"scheme `{scheme[:16]}` is not http or https", reason="bad_url")
    h = normalise_host(host)
    if not h:
        raise EgressDenied("the URL has no host", reason="bad_url")
    return Destination(scheme=scheme, host=h, port=port or DEFAULT_PORTS[scheme], ip=_ip(h))


def match_destination(dest: Destination, entries: Sequence[EgressEntry]) -> EgressEntry:
    """The entry that lets the adapter reach `dest`, else `EgressDenied`."""
    for entry in entries:
        if entry.allows(dest.scheme, dest.host, dest.port):
            return entry
    where = f"{dest.scheme}://{dest.authority}"
    if dest.ip is not None:
        raise EgressDenied(
            f"`{where}` is an IP address that no egress entry names",
            reason="ip_literal",
            host=dest.host,
        )
    raise EgressDenied(f"`{where}` is not in the adapter's egress list", reason="unlisted_destination",
                       host=dest.host)  # fmt: skip


def _embedded_v4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, NAT64, Teredo client): connecting to
    it may reach that IPv4 host."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def address_problem(ip: IPAddress) -> str | None:
    """Why `ip` is not a public address (None when it is): the kind of address it is."""
    inner = _embedded_v4(ip)
    if inner is not None:
        problem = address_problem(inner)
        if problem is not None:
            return problem
    if ip in _METADATA:
        return "metadata"
    for kind, flag in (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link_local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private),
    ):
        if flag:
            return kind
    if not ip.is_global:
        return "not_global"  # shared address space (100.64.0.0/10) and the like
    return None


def check_addresses(dest: Destination, addresses: Sequence[str], entries: Sequence[EgressEntry]) -> str:
    """The address to connect to for `dest`, given what its host resolved to: every address
    must be public or named by an entry (one bad answer among good ones is how a rebinding or
    split-horizon attack hides). `EgressDenied` otherwise."""
    if not addresses:
        raise EgressDenied(f"`{dest.host}` did not resolve to any address", reason="unresolvable",
                           host=dest.host)  # fmt: skip
    for text in addresses:
        ip = _ip(text)
        if ip is None:
            raise EgressDenied(f"`{dest.host}` resolved to `{text[:64]}`, not an IP address",
                               reason="unresolvable", host=dest.host)  # fmt: skip
        problem = address_problem(ip)
        if problem is not None and not any(e.covers(ip) for e in entries):
            raise EgressDenied(
                f"`{dest.host}` resolves to {ip} ({problem.replace('_', ' ')}), which no egress entry names",
                reason="blocked_address",
                host=dest.host,
                address=text,
                kind=problem,
            )
    return addresses[0]

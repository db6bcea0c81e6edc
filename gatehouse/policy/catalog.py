"""The adapter catalog: the tools a bundle knows, as frozen values (the bundle's `adapters:`).

    catalog = policy.catalog
    catalog.lookup("github", "list_issues")    -> Lookup(adapter, action)
    catalog.validate_params("github", "list_issues", {"owner": 1})
    -> "`$.owner`: must be of type string, got integer"

An adapter is `http` (the broker makes the call: `base_url`, `egress`, `credential`, per action
`method`, `path`, `body`), `external` (decided here, executed by the caller) or `mcp` (an upstream
MCP server: `command` with `env`, or `url` under `egress`; its `actions` override `effect` and
`output` per tool, so tools it does not list are still known, with no schema and no effect).
Each action may carry a JSON Schema for its `params` (its validator compiled once, when the bundle
loads), an `effect` (`read` | `write` | `destructive`) and an `output` trust (`untrusted`, the
default, or `trusted`: its output is not kept for `from_untrusted`).

The catalog holds secret *names* (`credential.secret`, `env: {X: {secret: name}}`), never their
values: `to_public` may be shown to any identity. Adapter names compare case-insensitively (an
agent cannot skip an adapter's schema by spelling it `GitHub`); action names exactly (MCP tool
names are case-sensitive).

`parse_egress` is the one reader of an egress entry, for the loader and the broker alike.
Pure: no clock, no network, no environment.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gatehouse.policy._jsonschema import ParamsValidator

__all__ = [
    "ADAPTER_KINDS",
    "EFFECTS",
    "EMPTY_CATALOG",
    "HTTP_METHODS",
    "OUTPUT_TRUST",
    "Action",
    "Adapter",
    "Catalog",
    "Credential",
    "EgressEntry",
    "EgressError",
    "EnvVar",
    "Lookup",
    "RateLimit",
    "Sandbox",
    "parse_egress",
    "parse_rate_limit",
]

ADAPTER_KINDS = ("http", "external", "mcp")
EFFECTS = ("read", "write", "destructive")
OUTPUT_TRUST = ("untrusted", "trusted")
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_DEFAULT_PORTS = {"http": 80, "https": 443}

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class EgressError(ValueError):
    """An egress entry is malformed (the loader names its line)."""


# A DNS name: labels of letters, digits and `-`, not starting or ending with `-`.
_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_HOSTNAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
_ENTRY = re.compile(
    r"^(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<host>\[[^\]/]*\]|[^:/?#@\[\]]+)(?::(?P<port>[0-9]{1,5}))?$"
)


@dataclass(frozen=True, slots=True)
class EgressEntry:
    """One egress destination: `scheme://host[:port]` (host may be `*.domain` or an IP literal),
    or a bare IP address / CIDR network.

    A `scheme://host` entry without a port means the scheme's default port (443 for https). A
    `*.domain` host matches any name under `domain`, not `domain` itself. A bare address or
    network (`network` set, `scheme` None) names addresses: any scheme and port to them, and it
    is what lets a destination resolve to a private address at all.
    """

    text: str
    scheme: str | None = None
    host: str | None = None  # lower case; for `*.domain` the `domain` part
    port: int | None = None
    wildcard: bool = False
    network: IPNetwork | None = None  # a bare IP/CIDR entry, or a URL entry whose host is an IP

    def allows(self, scheme: str, host: str, port: int | None = None) -> bool:
        """Whether a request to `scheme://host:port` (before resolving `host`) is under this entry."""
        scheme = scheme.lower()
        if self.scheme is not None:
            if scheme != self.scheme:
                return False
            want = self.port if self.port is not None else _DEFAULT_PORTS.get(self.scheme)
            if (port if port is not None else _DEFAULT_PORTS.get(scheme)) != want:
                return False
        address = _ip(host)
        if self.network is not None:
            return address is not None and address in self.network
        if address is not None or self.host is None:
            return False
        name = host.lower().rstrip(".")
        if self.wildcard:
            return name.endswith("." + self.host)
        return name == self.host

    def covers(self, address: IPAddress) -> bool:
        """Whether this entry names `address` (or its network) explicitly."""
        return self.network is not None and address in self.network


def _ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def parse_egress(entry: str) -> EgressEntry:
    """Read one egress entry; `EgressError` says what is wrong with a malformed one."""
    if not isinstance(entry, str) or not entry:
        raise EgressError("an egress entry must be a non-empty string")
    text = entry.strip()
    if "://" not in text:
        try:
            return EgressEntry(text=entry, network=ipaddress.ip_network(text, strict=True))
        except ValueError:
            raise EgressError(
                f"bad egress entry `{entry}`: expected `scheme://host[:port]` (host may be "
                f"`*.domain`) or an IP address or CIDR network"
            ) from None
    m = _ENTRY.match(text.lower())
    if m is None:
        raise EgressError(
            f"bad egress entry `{entry}`: expected `scheme://host[:port]` with no path, query or "
            f"user (host may be `*.domain`)"
        )
    scheme, host, port_text = m.group("scheme"), m.group("host"), m.group("port")
    if scheme not in _DEFAULT_PORTS:
        raise EgressError(f"bad egress entry `{entry}`: scheme must be http or https")
    port = None
    if port_text is not None:
        port = int(port_text)
        if not 1 <= port <= 65535:
            raise EgressError(f"bad egress entry `{entry}`: port must be 1 to 65535")
    address = _ip(host)
    if address is not None:
        if host.startswith("[") != (address.version == 6):
            raise EgressError(f"bad egress entry `{entry}`: an IPv6 host is written in brackets")
        return EgressEntry(text=entry, scheme=scheme, host=str(address), port=port,
                           network=ipaddress.ip_network(address))  # fmt: skip
    wildcard = host.startswith("*.")
    name = host[2:] if wildcard else host
    if not _HOSTNAME.match(name) or "*" in name or (wildcard and "." not in name):
        raise EgressError(
            f"bad egress entry `{entry}`: `{host}` is not a host name (a wildcard is `*.domain`)"
        )
    return EgressEntry(text=entry, scheme=scheme, host=name, port=port, wildcard=wildcard)


def split_url(url: str) -> tuple[str, str, int | None] | None:
    """(scheme, host, port) of an absolute http(s) URL, or None when it is not one."""
    m = re.match(r"^(?P<scheme>https?)://(?P<host>\[[^\]/]*\]|[^:/?#@\[\]]+)(?::(?P<port>[0-9]{1,5}))?(?:[/?#].*)?$",
                 url, re.IGNORECASE | re.DOTALL)  # fmt: skip
    if m is None:
        return None
    port = int(m.group("port")) if m.group("port") else None
    return m.group("scheme").lower(), m.group("host").strip("[]").lower(), port


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Per session and adapter: `rate` steps a second on average, bursts of up to `burst`."""

    rate: float
    burst: int

    def __str__(self) -> str:
        rate = int(self.rate) if self.rate == int(self.rate) else self.rate
        return f"{rate}/{self.burst}"


_RATE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(?:/\s*([0-9]+)\s*)?$")


def parse_rate_limit(text: str | int | float) -> RateLimit:
    """`RATE/BURST` (per second), or a bare `RATE` (burst = RATE rounded up). `ValueError` else."""
    if isinstance(text, bool):
        raise ValueError("a rate limit is `RATE/BURST`, such as `5/10`")
    m = _RATE.match(str(text))
    if m is None:
        raise ValueError(f"bad rate limit `{text}` (expected `RATE/BURST` per second, such as `5/10`)")
    rate = float(m.group(1))
    burst = int(m.group(2)) if m.group(2) is not None else max(1, int(-(-rate // 1)))
    if rate <= 0 or burst < 1:
        raise ValueError(f"bad rate limit `{text}`: the rate and the burst must be positive")
    return RateLimit(rate=rate, burst=burst)


@dataclass(frozen=True, slots=True)
class Credential:
    """How the broker authenticates an adapter's request: a stored secret (`secret` names it) or
    a fresh token minted per execution (`mint`, with `audience` and `ttl` in seconds), put in
    `header` as `format` says (`{secret}` or `{token}` stands for the value)."""

    header: str
    format: str
    secret: str | None = None
    mint: bool = False
    audience: str | None = None
    ttl: int | None = None

    def render(self, value: str) -> str:
        """The header's value with the secret or token in place."""
        return self.format.replace("{token}" if self.mint else "{secret}", value)

    def to_public(self) -> dict[str, Any]:
        if self.mint:
            return {"mint": True, "audience": self.audience, "ttl": self.ttl, "header": self.header,
                    "format": self.format}  # fmt: skip
        return {"secret": self.secret, "header": self.header, "format": self.format}


@dataclass(frozen=True, slots=True)
class EnvVar:
    """One variable of a stdio MCP server's environment: a literal `value`, or the stored secret
    named `secret` (injected when the process starts, never written in the bundle)."""

    name: str
    value: str | None = None
    secret: str | None = None

    def to_public(self) -> Any:
        return {"secret": self.secret} if self.secret is not None else self.value


@dataclass(frozen=True, slots=True)
class Sandbox:
    """Limits of a process Gatehouse starts for an adapter. `enabled` False is `sandbox: none`.
    `memory` is in bytes; the other limits in seconds and processes."""

    enabled: bool = True
    network: str = "none"  # none | egress
    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    memory: int = 512 * 1024 * 1024
    cpu_seconds: int = 60
    processes: int = 64
    wall_seconds: int = 300

    def to_public(self) -> Any:
        if not self.enabled:
            return "none"
        return {"network": self.network, "read": list(self.read), "write": list(self.write),
                "memory": self.memory, "cpu_seconds": self.cpu_seconds, "processes": self.processes,
                "wall_seconds": self.wall_seconds}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Action:
    """One action (tool) of an adapter. `params` is its JSON Schema (None: any params), compiled
    once into `validator`; `path_params` are the `{name}`s of `path`."""

    name: str
    effect: str | None = None
    output: str = "untrusted"
    method: str | None = None
    path: str | None = None
    body: str | None = None  # `params`: the params as the JSON body; None: no body
    params: Mapping[str, Any] | None = None
    path_params: tuple[str, ...] = ()
    validator: ParamsValidator | None = field(default=None, compare=False, repr=False)
    line: int | None = field(default=None, compare=False)

    @property
    def trusted(self) -> bool:
        return self.output == "trusted"

    def validate(self, params: Any) -> str | None:
        """The first schema violation of `params` (path and rule, never the value), or None."""
        return None if self.validator is None else self.validator.first_error(params)

    def to_public(self) -> dict[str, Any]:
        out: dict[str, Any] = {"effect": self.effect, "output": self.output}
        for key in ("method", "path", "body"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.params is not None:
            out["params"] = self.params
        return out


@dataclass(frozen=True, slots=True)
class Adapter:
    name: str
    kind: str
    actions: Mapping[str, Action] = field(default_factory=dict)
    base_url: str | None = None
    egress: tuple[EgressEntry, ...] = ()
    credential: Credential | None = None
    rate_limit: RateLimit | None = None
    command: tuple[str, ...] = ()
    env: tuple[EnvVar, ...] = ()
    url: str | None = None
    sandbox: Sandbox | None = None  # for an adapter whose process Gatehouse starts
    line: int | None = field(default=None, compare=False)

    @property
    def lists_actions(self) -> bool:
        """Whether an action it does not list is unknown. An MCP adapter's tools come from its
        upstream: its `actions` only override them."""
        return self.kind != "mcp"

    def action(self, name: str) -> Action | None:
        return self.actions.get(name)

    def egress_allows(self, url: str) -> bool:
        """Whether `url` (its scheme, host and port; before resolving) is under `egress`."""
        parts = split_url(url)
        return parts is not None and any(e.allows(*parts) for e in self.egress)

    def to_public(self, actions: Mapping[str, Action] | None = None) -> dict[str, Any]:
        """The adapter as `GET /api/v1/adapters` shows it (secret names only, never values);
        `actions` narrows the actions shown."""
        shown = self.actions if actions is None else actions
        out: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.base_url is not None:
            out["base_url"] = self.base_url
        if self.url is not None:
            out["url"] = self.url
        if self.command:
            out["command"] = list(self.command)
        if self.env:
            out["env"] = {v.name: v.to_public() for v in self.env}
        if self.egress:
            out["egress"] = [e.text for e in self.egress]
        if self.credential is not None:
            out["credential"] = self.credential.to_public()
        if self.rate_limit is not None:
            out["rate_limit"] = str(self.rate_limit)
        if self.sandbox is not None:
            out["sandbox"] = self.sandbox.to_public()
        out["actions"] = {name: a.to_public() for name, a in shown.items()}
        return out


@dataclass(frozen=True, slots=True)
class Lookup:
    """What the catalog says of `adapter:action`: `adapter` None when the adapter is unlisted
    (policy alone judges it); `unknown` when a listing adapter lacks the action."""

    adapter: Adapter | None = None
    action: Action | None = None

    @property
    def unknown(self) -> bool:
        return self.adapter is not None and self.action is None and self.adapter.lists_actions

    @property
    def effect(self) -> str | None:
        return self.action.effect if self.action is not None else None

    @property
    def trusted(self) -> bool:
        """Whether the action's output is trusted (only when the catalog says so)."""
        return self.action is not None and self.action.trusted


_UNLISTED = Lookup()


@dataclass(frozen=True, slots=True)
class Catalog:
    """The bundle's adapters by lower-cased name (empty when the bundle has no `adapters:`)."""

    adapters: Mapping[str, Adapter] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.adapters)

    def adapter(self, name: str) -> Adapter | None:
        return self.adapters.get(name.lower())

    def action(self, adapter: str, action: str) -> Action | None:
        a = self.adapters.get(adapter.lower())
        return None if a is None else a.actions.get(action)

    def lookup(self, adapter: str, action: str) -> Lookup:
        a = self.adapters.get(adapter.lower())
        if a is None:
            return _UNLISTED
        return Lookup(adapter=a, action=a.actions.get(action))

    def validate_params(self, adapter: str, action: str, params: Any) -> str | None:
        """The first schema violation of `params` for `adapter:action`, or None (also when the
        action has no schema or is not in the catalog)."""
        act = self.action(adapter, action)
        return None if act is None else act.validate(params)

    def to_public(self) -> list[dict[str, Any]]:
        return [a.to_public() for a in self.adapters.values()]


EMPTY_CATALOG = Catalog()

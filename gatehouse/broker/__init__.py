"""The tool broker's building blocks (DESIGN section 10): egress checked on the wire, secrets
held for adapters, credentials minted per execution.

An edge/adapter layer beside `control`: it may use the domain, the pure core, the store and
the metrics; the control plane wires it.
"""

from __future__ import annotations

from gatehouse.broker.egress import EgressDenied, EgressEntry, parse_egress
from gatehouse.broker.transport import EgressLimits, Fetched, PinnedTransport, Resolver, fetch

__all__ = [
    "EgressDenied",
    "EgressEntry",
    "EgressLimits",
    "Fetched",
    "PinnedTransport",
    "Resolver",
    "fetch",
    "parse_egress",
]

"""The canonical form of a bundle: its snapshot text, and the rules written back canonically.

`canonical_json` is the text a bundle's snapshot (sha256) is taken over: sorted keys, no
whitespace, UTF-8, so that YAML and JSON renderings of one bundle share a snapshot.
`canonical_data` writes a loaded bundle in the canonical spelling (`decision`, `match`,
`conditions`, defaults written out), whichever spelling it was written in: what
`gatehouse policy check --canonical` prints, and loading it again gives the same rules (and the
same adapter catalog, with its defaults written out too).
"""

from __future__ import annotations

import json
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from gatehouse.policy.catalog import Adapter, Catalog
from gatehouse.policy.model import Match, Rule

if TYPE_CHECKING:
    from gatehouse.policy.loader import Bundle

__all__ = ["canonical_data", "canonical_json", "catalog_data"]

_MATCH_KEYS = tuple(f.name for f in fields(Match))


def canonical_json(data: Any) -> str:
    """The canonical text of a bundle: sorted keys, no whitespace, UTF-8."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _duration(seconds: int) -> str:
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _match_data(m: Match) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in _MATCH_KEYS:
        value = getattr(m, key)
        if value:
            out[key] = {k: list(v) for k, v in value.items()} if key == "labels" else list(value)
    return out


def _rule_data(rule: Rule) -> dict[str, Any]:
    out: dict[str, Any] = {"id": rule.id}
    if rule.description:
        out["description"] = rule.description
    out["decision"] = rule.decision
    out["reason"] = rule.reason
    match = _match_data(rule.match)
    if match:
        out["match"] = match
    if rule.conditions:
        out["conditions"] = [c.to_data() for c in rule.conditions]
    if rule.remediations:
        out["remediations"] = [
            {k: v for k, v in r.to_dict().items() if v or k == "id"} for r in rule.remediations
        ]
    if rule.approval_ttl is not None:
        out["approval_ttl"] = _duration(rule.approval_ttl)
    out["audit"] = rule.audit
    return out


def _adapter_data(adapter: Adapter) -> dict[str, Any]:
    out = adapter.to_public()
    del out["name"]  # the key it is listed under
    if adapter.credential is not None and adapter.credential.ttl is not None:
        out["credential"]["ttl"] = _duration(adapter.credential.ttl)
    # An action without an effect has none to write (`null` is not an effect).
    out["actions"] = {
        name: {k: v for k, v in a.items() if v is not None} for name, a in out["actions"].items()
    }
    return out


def catalog_data(catalog: Catalog) -> dict[str, Any]:
    """The adapter catalog in the canonical spelling (`adapters:` of `--canonical`)."""
    return {a.name: _adapter_data(a) for a in catalog.adapters.values()}


def canonical_data(bundle: Bundle) -> dict[str, Any]:
    """The bundle in the canonical spelling (what `gatehouse policy check --canonical` prints).

    Loading it again gives the same rules, whichever spelling the bundle was written in; defaults
    are written out so that a reader sees what applies.
    """
    out: dict[str, Any] = {"version": bundle.version, "name": bundle.name}
    if bundle.description:
        out["description"] = bundle.description
    out["default_decision"] = bundle.default_decision
    out["fail_mode"] = bundle.fail_mode
    if bundle.fail_mode_overrides:
        out["fail_mode_overrides"] = [
            {"topics": list(o.topics), "fail_mode": o.fail_mode} for o in bundle.fail_mode_overrides
        ]
    if bundle.require:
        out["require"] = [{"topics": list(r.topics), "fields": list(r.fields)} for r in bundle.require]
    if bundle.sets:
        out["sets"] = {name: list(items) for name, items in bundle.sets.items()}
    out["rules"] = [_rule_data(r) for r in bundle.rules]
    if bundle.output_rules:
        out["output_rules"] = [
            {
                "id": o.id,
                "detectors": list(o.detectors),
                "decision": o.decision,
                **({"reason": o.reason} if o.reason else {}),
                **({"topics": list(o.topics)} if o.topics else {}),
                **({"targets": list(o.targets)} if o.targets else {}),
            }
            for o in bundle.output_rules
        ]
    if bundle.classifiers:
        out["classifiers"] = [dict(c) for c in bundle.classifiers]
    if bundle.catalog:
        out["adapters"] = catalog_data(bundle.catalog)
    return out

"""Replaying the decision log under two bundles, for `gatehouse policy diff --decisions`.

The log comes from a running server (`GET /api/v1/decisions?stage=submit`, paged, with the key in
`$GATEHOUSE_API_KEY`) or from a JSON Lines file of decision records as that route answers them
(`--export FILE` writes one). A record is replayable when it carries the request it judged: a
denied submit keeps it (`request`); for a submit that made a job, the job is read back
(`GET /api/v1/jobs/{job_id}`) and its topic, prompt, labels and meta are the request. Each
request is judged as the server judges it (`judged_context`: ingress with the bundle's own
classifier, its `require` entries) under both bundles, with the tenant and requester roles the
record names.

Not replayed, and counted as skipped by reason: decisions of other stages (a dispatch re-judges a
submitted job, whose submit is replayed; a step's record keeps its parameters' names, not their
values), requests with attachments (their contents are not kept) and records whose job is gone.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from gatehouse.client import ApiError, Client
from gatehouse.commands._jobs import judged_context
from gatehouse.errors import GatehouseError, MissingField
from gatehouse.policy import Policy

__all__ = ["Replay", "fetch_records", "read_records", "replay"]

_REQUEST_KEYS = ("topic", "prompt", "labels", "meta")
# Denials decided before the policy was asked: no bundle changes them.
_BEFORE_POLICY = frozenset({"identity_scope", "incident_containment"})


def fetch_records(client: Client, *, since: str | None, limit: int) -> Iterator[dict[str, Any]]:
    """Submit decision records of the server's log, newest first, each with its `request`
    (read back from the job when the record does not keep it); at most `limit`."""
    cursor: str | None = None
    seen = 0
    while seen < limit:
        page = client.request(
            "GET",
            "/api/v1/decisions",
            stage="submit",
            since=since,
            limit=min(500, limit - seen),
            cursor=cursor,
        )
        for record in page["decisions"]:
            if record.get("request") is None and record.get("job_id"):
                try:
                    job = client.job(record["job_id"])
                except ApiError as exc:
                    if exc.status != 404:
                        raise
                else:
                    record["request"] = {k: job.get(k) for k in _REQUEST_KEYS}
                    record["request"]["attachments"] = job.get("attachments") or []
                    record["tenant"] = job.get("tenant")
            yield record
            seen += 1
            if seen >= limit:
                return
        cursor = page.get("next_cursor")
        if not cursor:
            return


def read_records(text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) of a JSON Lines export; `ValueError` naming the line when malformed."""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"line {number}: not valid JSON: {exc.msg}") from None
        if not isinstance(record, dict) or not isinstance(record.get("decision_id"), str):
            raise ValueError(f"line {number}: expected a decision record (an object with `decision_id`)")
        yield number, record


@dataclass
class Replay:
    old_snapshot: str
    new_snapshot: str
    records: int = 0
    replayed: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    # Records the OLD bundle decides otherwise than the server did: OLD is not what judged them.
    unlike_recorded: int = 0
    changes: list[dict[str, Any]] = field(default_factory=list)

    def groups(self) -> list[dict[str, Any]]:
        """Changes grouped by (old rule, new rule), the largest group first."""
        by: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
        for c in self.changes:
            o, n = c["old"], c["new"]
            key = (str(o["decision"]), str(o["rule_id"]), str(n["decision"]), str(n["rule_id"]))
            by.setdefault(key, []).append(c)
        out = [
            {
                "old": {"decision": k[0], "rule_id": k[1]},
                "new": {"decision": k[2], "rule_id": k[3]},
                "count": len(v),
                "requests": [
                    {x: c[x] for x in ("decision_id", "timestamp", "tenant", "topic", "job_id")} for c in v
                ],
            }
            for k, v in by.items()
        ]
        return sorted(out, key=lambda g: -int(g["count"]))

    def to_dict(self) -> dict[str, Any]:
        return {
            "old_snapshot": self.old_snapshot,
            "new_snapshot": self.new_snapshot,
            "records": self.records,
            "replayed": self.replayed,
            "skipped": dict(self.skipped),
            "unlike_recorded": self.unlike_recorded,
            "changed": len(self.changes),
            "groups": self.groups(),
        }


def _skip(r: Replay, reason: str) -> None:
    r.skipped[reason] = r.skipped.get(reason, 0) + 1


def _outcome(p: Policy, body: Mapping[str, Any], roles: list[str] | None) -> dict[str, Any]:
    try:
        ctx = judged_context(p, body)
    except MissingField as exc:
        return {"decision": "refused", "rule_id": "missing_field", "fields": list(exc.fields)}
    if roles:
        ctx["requester_role"] = roles
    d = p.decide(ctx)
    return {"decision": d.decision, "rule_id": d.rule_id}


def replay(old: Policy, new: Policy, records: Iterator[dict[str, Any]]) -> Replay:
    """Every replayable submit record judged under `old` and `new` (see the module docstring)."""
    r = Replay(old.snapshot, new.snapshot)
    for record in records:
        r.records += 1
        if record.get("stage") != "submit":
            _skip(r, f"stage {record.get('stage')}")
            continue
        if record.get("rule_id") in _BEFORE_POLICY:
            _skip(r, "decided before policy")
            continue
        request = record.get("request")
        if not isinstance(request, dict) or not isinstance(request.get("topic"), str):
            _skip(r, "request not kept")
            continue
        if request.get("attachments"):
            _skip(r, "attachments not kept")
            continue
        body: dict[str, Any] = {k: request[k] for k in _REQUEST_KEYS if request.get(k) is not None}
        meta = body.get("meta")
        if isinstance(meta, dict):
            body["meta"] = {k: meta[k] for k in ("capability", "risk_tags") if k in meta}
        tenant = record.get("tenant") or request.get("tenant")
        if isinstance(tenant, str):
            body["tenant"] = tenant
        roles = request.get("requester_roles")
        roles = [x for x in roles if isinstance(x, str)] if isinstance(roles, list) else None
        try:
            a = _outcome(old, body, roles)
            b = _outcome(new, body, roles)
        except GatehouseError:
            _skip(r, "request not judgeable")
            continue
        r.replayed += 1
        if a["decision"] != record.get("result") and not record.get("fail_mode_applied"):
            r.unlike_recorded += 1
        if (a["decision"], a["rule_id"]) != (b["decision"], b["rule_id"]):
            r.changes.append(
                {
                    "decision_id": record["decision_id"],
                    "timestamp": record.get("timestamp"),
                    "tenant": body.get("tenant"),
                    "topic": body["topic"],
                    "job_id": record.get("job_id"),
                    "recorded": {"decision": record.get("result"), "rule_id": record.get("rule_id")},
                    "old": a,
                    "new": b,
                }
            )
    return r

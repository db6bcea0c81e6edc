"""Replaying the decision log under two bundles, for `gatehouse policy diff --decisions`.

The log comes from a running server (`GET /api/v1/decisions?stage=submit` and `?stage=step`,
paged, with the key in `$GATEHOUSE_API_KEY`) or from a JSON Lines file of decision records as
that route answers them (`--export FILE` writes one, with what a replay reads from elsewhere
added to each record, so that the file replays with no server).

Submits. A record is replayable when it carries the request it judged: a denied submit keeps it
(`request`); for a submit that made a job, the job is read back (`GET /api/v1/jobs/{job_id}`) and
its topic, prompt, labels and meta are the request. Each request is judged as the server judges
it (`judged_context`: ingress with the bundle's own classifier, its `require` entries) under both
bundles, with the tenant and requester roles the record names.

Steps. A step's record keeps its params' schema, not their values; the session store keeps them.
Each step's session is read once (`GET /api/v1/sessions/{session_id}?detail=replay`, an admin's
key) and the record gains `step_replay`: the session's task and bound, the step's adapter,
action, params and the job fields it was judged with, and the earlier steps of its session
(adapter, action, decision, status, kept output, trusted). The step is judged under both bundles
by the server's own functions (`domain.step_replay.replay_context`: the catalog's schema check
before the policy, then the step context with the session's history and provenance). The history
is the session as stored when it is read: an earlier step settled by an approval, or a result
reported after the step was decided, reads as it stands now, as when the server judges an
approved step again.

Not replayed, and counted as skipped by reason: decisions of other stages (a dispatch re-judges a
submitted job, whose submit is replayed), decisions taken before the policy was asked (an
identity's scope, a containment, a step's rate limit), a step's decision settled by a person (an
approval's outcome: `approval_event` on the record), requests with attachments (their contents
are not kept), and records whose job, session or step is gone.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from gatehouse.client import ApiError, Client
from gatehouse.commands._jobs import judged_context
from gatehouse.domain.sessions import DEFAULT_SESSION_BOUND, Session, SessionStep
from gatehouse.domain.step_replay import replay_context, step_job
from gatehouse.errors import GatehouseError, MissingField, NotFound
from gatehouse.policy import DECISIONS, Policy

__all__ = ["Replay", "fetch_records", "read_records", "replay"]

_REQUEST_KEYS = ("topic", "prompt", "labels", "meta")
# Denials decided before the policy was asked: no bundle changes them (a step's rate limit
# depends on the calls around it, which a replay does not have).
_BEFORE_POLICY = frozenset({"identity_scope", "incident_containment", "identity_revoked", "rate_limit"})
_STAGES = ("submit", "step")
_UNREADABLE = {403: "session needs an admin key", 404: "session gone"}
_HISTORY_KEYS = ("step_id", "adapter", "action", "decision", "status", "output", "trusted")
# What a change row names of its request, by stage, beside its decision id and time.
_ROW_KEYS = ("stage", "tenant", "topic", "target", "session_id", "step_id", "job_id")


def fetch_records(client: Client, *, since: str | None, limit: int) -> Iterator[dict[str, Any]]:
    """Submit and step decision records of the server's log, each stage newest first and at
    most `limit` of each; a submit with its `request` (read back from the job when the record
    does not keep it), a step with its `step_replay` (read from its session)."""
    sessions: dict[str, dict[str, Any]] = {}
    for stage in _STAGES:
        cursor: str | None = None
        seen = 0
        while seen < limit:
            page = client.request(
                "GET",
                "/api/v1/decisions",
                stage=stage,
                since=since,
                limit=min(500, limit - seen),
                cursor=cursor,
            )
            for record in page["decisions"]:
                if stage == "submit":
                    _with_request(client, record)
                elif _step_skip(record) is None:
                    _with_step_replay(client, record, sessions)
                yield record
                seen += 1
                if seen >= limit:
                    break
            cursor = page.get("next_cursor")
            if not cursor:
                break


def _with_request(client: Client, record: dict[str, Any]) -> None:
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


def _with_step_replay(client: Client, record: dict[str, Any], sessions: dict[str, dict[str, Any]]) -> None:
    """`record["step_replay"]`: what judging the step again needs (see the module docstring), or
    `{"missing": why}` when its session or step is gone. Each session is read once."""
    sid, step_id = record.get("session_id"), record.get("step_id")
    if not isinstance(sid, str) or not isinstance(step_id, str):
        return
    if sid not in sessions:
        try:
            sessions[sid] = client.session(sid, detail="replay")
        except ApiError as exc:
            # Only an admin reads a session for replay: another key still replays the submits.
            if exc.status not in _UNREADABLE:
                raise
            sessions[sid] = {"missing": _UNREADABLE[exc.status]}
    view = sessions[sid]
    if "missing" in view:
        record["step_replay"] = {"missing": view["missing"]}
        return
    steps = view.get("steps") or []
    at = next((i for i, s in enumerate(steps) if s.get("step_id") == step_id), None)
    if at is None:
        record["step_replay"] = {"missing": "step gone"}
        return
    step = steps[at]
    record["step_replay"] = {
        "session": {k: view.get(k) for k in ("session_id", "task", "bounded", "untrusted_bound")},
        "step": {k: step.get(k) for k in ("step_id", "adapter", "action", "params", "job")},
        "history": [{k: h.get(k) for k in _HISTORY_KEYS} for h in steps[:at]],
    }


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
                    {x: c[x] for x in ("decision_id", "timestamp", *_ROW_KEYS) if x in c} for c in v
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


def _step_skip(record: Mapping[str, Any]) -> str | None:
    """Why a step record is not replayed whatever its session holds, or None."""
    if record.get("approval_event") is not None:
        return "settled by a person"
    if record.get("rule_id") in _BEFORE_POLICY:
        return "decided before policy"
    return None


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"`{what}` must be a non-empty string")
    return value


def _stored(item: Any) -> SessionStep:
    """An earlier step of an exported session, as the store kept what the gate reads of it."""
    if not isinstance(item, Mapping):
        raise ValueError("a history item must be an object")
    decision = item.get("decision")
    if decision not in DECISIONS:
        raise ValueError(f"bad history decision `{decision}`")
    status = item.get("status")
    return SessionStep(
        session_id="",
        step_id=str(item.get("step_id") or ""),
        adapter=_text(item.get("adapter"), "adapter"),
        action=_text(item.get("action"), "action"),
        params={},
        step_hash="",
        decision_id="",
        result=str(decision),
        rule_id="",
        created_at=0.0,
        status=status if isinstance(status, str) else None,
        output=item.get("output"),
        trusted=item.get("trusted") is True,
    )


@dataclass(frozen=True, slots=True)
class _StepCase:
    session: Session
    earlier: list[SessionStep]
    adapter: str
    action: str
    params: Mapping[str, Any]
    job: dict[str, Any]
    bound: int


def _step_case(data: Mapping[str, Any]) -> _StepCase:
    """A record's `step_replay` read back; `ValueError` when it is not one."""
    session, step, history = data.get("session"), data.get("step"), data.get("history")
    if not isinstance(session, Mapping) or not isinstance(step, Mapping) or not isinstance(history, list):
        raise ValueError("`step_replay` needs `session`, `step` and `history`")
    job, params = step.get("job"), step.get("params")
    if not isinstance(job, Mapping) or not isinstance(params, Mapping):
        raise ValueError("a step needs `params` and `job` objects")
    topic, capability = job.get("topic"), job.get("capability")
    if topic is not None and not isinstance(topic, str):
        raise ValueError("`job.topic` must be a string")
    fields = step_job(
        tenant=_text(job.get("tenant"), "job.tenant"),
        requester_role=_text(job.get("requester_role"), "job.requester_role"),
        topic=topic,
        capability=capability,
    )
    task = session.get("task") or ""
    bound = session.get("untrusted_bound")
    if not isinstance(task, str):
        raise ValueError("`session.task` must be a string")
    return _StepCase(
        session=Session(
            id=str(session.get("session_id") or ""),
            tenant=fields["tenant"],
            identity_id="",
            task=task,
            created_at=0.0,
            bounded=session.get("bounded") is True,
        ),
        earlier=[_stored(item) for item in history],
        adapter=_text(step.get("adapter"), "adapter"),
        action=_text(step.get("action"), "action"),
        params=params,
        job=fields,
        bound=bound
        if isinstance(bound, int) and not isinstance(bound, bool) and bound > 0
        else DEFAULT_SESSION_BOUND,
    )


def _step_outcome(p: Policy, case: _StepCase) -> dict[str, Any]:
    try:
        _, pre, ctx = replay_context(
            p, case.session, case.earlier, adapter=case.adapter, action=case.action, params=case.params,
            job=case.job, bound=case.bound,
        )  # fmt: skip
    except NotFound as exc:
        if exc.code != "unknown_action":
            raise
        # The server answers 404 and decides nothing: an outcome a catalog change can cause.
        return {"decision": "refused", "rule_id": "unknown_action"}
    d = pre if pre is not None else p.decide(ctx)
    return {"decision": d.decision, "rule_id": d.rule_id}


def _replay_submit(r: Replay, old: Policy, new: Policy, record: dict[str, Any]) -> dict[str, Any] | None:
    """The change row of a submit record, None when unchanged; skips are counted in `r`."""
    if record.get("rule_id") in _BEFORE_POLICY:
        _skip(r, "decided before policy")
        return None
    request = record.get("request")
    if not isinstance(request, dict) or not isinstance(request.get("topic"), str):
        _skip(r, "request not kept")
        return None
    if request.get("attachments"):
        _skip(r, "attachments not kept")
        return None
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
        return None
    return _judged(r, record, a, b, {"stage": "submit", "tenant": body.get("tenant"), "topic": body["topic"]})


def _replay_step(r: Replay, old: Policy, new: Policy, record: dict[str, Any]) -> dict[str, Any] | None:
    """The change row of a step record, None when unchanged; skips are counted in `r`."""
    why = _step_skip(record)
    if why is not None:
        _skip(r, why)
        return None
    data = record.get("step_replay")
    if not isinstance(data, dict):
        _skip(r, "session not kept")
        return None
    if "missing" in data:
        _skip(r, str(data["missing"]))
        return None
    try:
        case = _step_case(data)
        a = _step_outcome(old, case)
        b = _step_outcome(new, case)
    except (ValueError, GatehouseError):
        _skip(r, "step not judgeable")
        return None
    about = {
        "stage": "step",
        "tenant": case.job["tenant"],
        "target": record.get("target"),
        "session_id": record.get("session_id"),
        "step_id": record.get("step_id"),
    }
    return _judged(r, record, a, b, about)


def _judged(
    r: Replay, record: Mapping[str, Any], a: dict[str, Any], b: dict[str, Any], about: dict[str, Any]
) -> dict[str, Any] | None:
    r.replayed += 1
    if a["decision"] != record.get("result") and not record.get("fail_mode_applied"):
        r.unlike_recorded += 1
    if (a["decision"], a["rule_id"]) == (b["decision"], b["rule_id"]):
        return None
    return {
        "decision_id": record["decision_id"],
        "timestamp": record.get("timestamp"),
        **about,
        "job_id": record.get("job_id"),
        "recorded": {"decision": record.get("result"), "rule_id": record.get("rule_id")},
        "old": a,
        "new": b,
    }


def replay(old: Policy, new: Policy, records: Iterator[dict[str, Any]]) -> Replay:
    """Every replayable submit and step record judged under `old` and `new` (see the module
    docstring)."""
    r = Replay(old.snapshot, new.snapshot)
    for record in records:
        r.records += 1
        stage = record.get("stage")
        if stage == "submit":
            change = _replay_submit(r, old, new, record)
        elif stage == "step":
            change = _replay_step(r, old, new, record)
        else:
            _skip(r, f"stage {stage}")
            continue
        if change is not None:
            r.changes.append(change)
    return r

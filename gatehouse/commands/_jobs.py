"""Job bodies, as the CLI reads them, and their flattening into the policy context.

A job body is what `POST /api/v1/jobs` and `POST /api/v1/policy/simulate` take:
`{topic, prompt?, labels?, meta?: {capability, risk_tags}, tenant?, requester_role?, approved?}`.
The engine reads a flat context instead (DESIGN.md section 3); `job_context` validates a body and
flattens it. Errors are `BadRequest` with code `invalid_job`, so the caller maps them to its edge
(an exit code here, a 422 in the API).

`judged_context` is what the offline tools decide: the body after the server's own ingress
(`gatehouse.ingress.intake`: server-only keys dropped, prompt and attachments classified,
derived labels winning, with the bundle's classifier) and after the bundle's `require` check,
which raises `MissingField` as the server's 422 does. A fixture that declares
`command_class: destructive` itself is sanitised exactly as on the server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from gatehouse.config import Settings
from gatehouse.errors import BadRequest, MissingField
from gatehouse.ingress import intake
from gatehouse.ingress.canon import canon_labels, canon_topic
from gatehouse.policy import Policy

__all__ = ["iter_jsonl", "job_context", "judged_context", "parse_json"]

# The server's bound on the attachment text it classifies, so that offline matches it.
_MAX_ATTACHMENT_CHARS = Settings().max_classified_attachment_chars

# Keys of a job body. `attachments`, `idempotency_key` and `job_id` belong to the HTTP API and do
# not affect a decision, but a body copied from an API call must still be accepted. Anything
# else is most likely a typo (`lables`) that would silently change the decision, so it fails.
_JOB_KEYS = (
    "topic",
    "prompt",
    "labels",
    "meta",
    "tenant",
    "requester_role",
    "approved",
    "attachments",
    "idempotency_key",
    "job_id",
)


def _bad(message: str) -> BadRequest:
    return BadRequest(message, code="invalid_job")


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value


def _string(job: Mapping[str, Any], key: str, what: str) -> str | None:
    if key not in job:
        return None
    value = job[key]
    if not isinstance(value, str):
        raise _bad(f"{what} must be a string, got `{_show(value)}`")
    return value


def job_context(job: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a job body and flatten it into the engine's request context.

    `tenant` defaults to `default` and `requester_role` to `agent`, as the API fills them in from
    the caller's identity. `capability`, `risk_tags` and `approved` are set only when the job
    gives them: an absent field and a given one are different things to a condition.
    """
    if not isinstance(job, Mapping):
        raise _bad(f"a job must be a JSON object, got `{_show(job)}`")
    unknown = [k for k in job if k not in _JOB_KEYS]
    if unknown:
        raise _bad(f"unknown key `{unknown[0]}` in the job (expected one of {', '.join(_JOB_KEYS)})")
    if "topic" not in job:
        raise _bad("a job needs a `topic`")
    topic = _string(job, "topic", "`topic`")
    if not topic:
        raise _bad("`topic` must not be empty")
    _string(job, "prompt", "`prompt`")

    labels: dict[str, str] = {}
    raw_labels = job.get("labels")
    if raw_labels is not None:
        if not isinstance(raw_labels, Mapping):
            raise _bad(f"`labels` must be an object of strings, got `{_show(raw_labels)}`")
        for key, value in raw_labels.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise _bad(f"label `{key}` must be a string, got `{_show(value)}`")
            labels[key] = value

    ctx: dict[str, Any] = {
        "topic": topic,
        "tenant": _string(job, "tenant", "`tenant`") or "default",
        "labels": labels,
        "requester_role": _string(job, "requester_role", "`requester_role`") or "agent",
    }

    meta = job.get("meta")
    if meta is not None:
        if not isinstance(meta, Mapping):
            raise _bad(f"`meta` must be an object, got `{_show(meta)}`")
        capability = _string(meta, "capability", "`meta.capability`")
        if capability is not None:
            ctx["capability"] = capability
        if "risk_tags" in meta:
            tags = meta["risk_tags"]
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise _bad(f"`meta.risk_tags` must be a list of strings, got `{_show(tags)}`")
            ctx["risk_tags"] = list(tags)

    if "approved" in job:
        approved = job["approved"]
        if not isinstance(approved, bool):
            raise _bad(f"`approved` must be true or false, got `{_show(approved)}`")
        ctx["approved"] = approved
    return ctx


def _attachments(job: Mapping[str, Any]) -> list[dict[str, Any]]:
    raw = job.get("attachments")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise _bad(f"`attachments` must be a list, got `{_show(raw)}`")
    out: list[dict[str, Any]] = []
    for a in raw:
        if not isinstance(a, Mapping) or not all(
            isinstance(a.get(k), str) for k in ("name", "content_base64")
        ):
            raise _bad("each attachment must be an object with string `name` and `content_base64`")
        out.append(dict(a))
    return out


def judged_context(policy: Policy, job: Mapping[str, Any]) -> dict[str, Any]:
    """The context the server would decide for `job` under `policy` (see the module docstring).

    Raises `BadRequest` (`invalid_job`) for a malformed body and `MissingField` when the bundle
    requires a field the job lacks.
    """
    ctx = job_context(job)
    meta = job.get("meta") or {}
    taken = intake(
        prompt=job.get("prompt") or "",
        labels=ctx["labels"],
        meta=meta,
        attachments=_attachments(job),
        classifier=policy.classifier,
        max_attachment_chars=_MAX_ATTACHMENT_CHARS,
    )
    topic = canon_topic(ctx["topic"])  # as the server's intake spells it
    missing = policy.missing_fields(
        topic, {"prompt": job.get("prompt") or "", "labels": taken.labels, "meta": taken.meta}
    )
    if missing:
        raise MissingField(topic, missing)
    # Flattened as the server's `jobs.model.job_context` flattens a stored job.
    out: dict[str, Any] = {
        "topic": topic,
        "tenant": ctx["tenant"],
        "labels": canon_labels(taken.labels),
        "capability": taken.meta.get("capability"),
        "risk_tags": taken.meta["risk_tags"],
        "requester_role": ctx["requester_role"],
    }
    if "approved" in ctx:
        out["approved"] = ctx["approved"]
    return out


def parse_json(text: str) -> Any:
    """`json.loads` with a Cedar-style error: `not valid JSON: expecting value at column 1`."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        msg = exc.msg[:1].lower() + exc.msg[1:]
        where = f"line {exc.lineno}, column {exc.colno}" if exc.lineno > 1 else f"column {exc.colno}"
        raise BadRequest(f"not valid JSON: {msg} at {where}", code="invalid_json") from None


def iter_jsonl(text: str) -> Iterator[tuple[int, dict[str, Any], dict[str, Any]]]:
    """`(line number, job body, context)` for each non-blank line of a JSON Lines file.

    Raises `BadRequest` whose message starts with `line N:` at the first malformed line.
    """
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            job = parse_json(line)
            ctx = job_context(job)
        except BadRequest as exc:
            raise BadRequest(f"line {number}: {exc.message}", code=exc.code) from None
        yield number, job, ctx

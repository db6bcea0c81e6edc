"""The request a caller makes of the gates, as a plain value.

Edges build it from what they received (the HTTP API from its validated pydantic body, the MCP
gateway and the CLI from theirs); the control services take nothing else, so no service depends
on an HTTP model. A `JobRequest` is what the agent *says*: ingress (`gatehouse.ingress.intake`)
turns it into the job that is judged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gatehouse.errors import BadRequest

__all__ = ["LABEL_KEY_PATTERN", "TOPIC_PATTERN", "JobRequest", "check_request"]

TOPIC_PATTERN = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"
LABEL_KEY_PATTERN = r"^[A-Za-z0-9_.\-/]{1,128}$"
_TOPIC = re.compile(TOPIC_PATTERN)
_LABEL_KEY = re.compile(LABEL_KEY_PATTERN)


@dataclass(frozen=True, slots=True)
class JobRequest:
    """A job body: submit, or (with `job_id`, and perhaps no topic) simulate and explain.

    `meta` holds `capability` and `risk_tags` (and whatever else was sent: the sanitiser drops
    and records unknown keys); each attachment is `{name, content_type, content_base64}`.
    """

    topic: str
    prompt: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)
    attachments: Sequence[Mapping[str, Any]] = ()
    idempotency_key: str | None = None
    # The tenant the body names, if any: it must be the caller's (checked by the gate).
    tenant: str | None = None
    # Simulate and explain only: a stored job to re-judge, or (with a topic) a label.
    job_id: str | None = None


def check_request(request: JobRequest, *, code: str = "invalid_request") -> None:
    """Raise `BadRequest` unless `request` is well formed by the rules the API's body model
    applies. Requests the API built were checked there; this is for requests the control plane
    builds itself (a remediation applies a policy's rewrite to a stored request)."""
    if not request.topic or len(request.topic) > 255 or not _TOPIC.match(request.topic):
        raise BadRequest(f"bad topic `{request.topic}`", code=code)
    for key, value in request.labels.items():
        if not _LABEL_KEY.match(key):
            raise BadRequest(f"bad label key `{key}` (letters, digits, `_.-/`, up to 128)", code=code)
        if not isinstance(value, str) or len(value) > 1024:
            raise BadRequest(f"label `{key}` must be a string of at most 1024 characters", code=code)
    capability = request.meta.get("capability")
    if capability is not None and (not isinstance(capability, str) or not 0 < len(capability) <= 128):
        raise BadRequest("the capability is 1 to 128 characters", code=code)
    tags = request.meta.get("risk_tags") or []
    if len(tags) > 32 or any(not isinstance(t, str) or not 0 < len(t) <= 64 for t in tags):
        raise BadRequest("at most 32 risk tags, each 1 to 64 characters", code=code)

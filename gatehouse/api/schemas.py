"""Request bodies. Validated once by pydantic at the edge; the gates take the result as is."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gatehouse.domain.requests import LABEL_KEY_PATTERN, TOPIC_PATTERN, JobRequest

__all__ = [
    "AttachmentIn",
    "DecideIn",
    "IdentityIn",
    "JobIn",
    "JobMetaIn",
    "LeaseIn",
    "PolicyIn",
    "RemediateIn",
    "ResultIn",
]

_LABEL_KEY = re.compile(LABEL_KEY_PATTERN)
_TOPIC = re.compile(TOPIC_PATTERN)


class AttachmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=255)
    content_type: str = Field("application/octet-stream", max_length=255)
    content_base64: str


class JobMetaIn(BaseModel):
    # Unknown meta keys are accepted here and dropped (and recorded) by the ingress sanitiser.
    model_config = ConfigDict(extra="allow")
    capability: str | None = Field(None, min_length=1, max_length=128)
    risk_tags: list[str] = Field(default_factory=list, max_length=32)

    @field_validator("risk_tags")
    @classmethod
    def _tags(cls, tags: list[str]) -> list[str]:
        for t in tags:
            if not t or len(t) > 64:
                raise ValueError("each risk tag is 1 to 64 characters")
        return tags


class JobIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    topic: str = Field(min_length=1, max_length=255, pattern=TOPIC_PATTERN)
    prompt: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    meta: JobMetaIn = Field(default_factory=lambda: JobMetaIn.model_validate({}))
    attachments: list[AttachmentIn] = Field(default_factory=list)
    idempotency_key: str | None = Field(None, min_length=1, max_length=128)
    tenant: str | None = Field(None, max_length=63)

    @field_validator("labels")
    @classmethod
    def _labels(cls, labels: dict[str, str]) -> dict[str, str]:
        for k, v in labels.items():
            if not _LABEL_KEY.match(k):
                raise ValueError(f"bad label key `{k}` (letters, digits, `_.-/`, up to 128)")
            if len(v) > 1024:
                raise ValueError(f"label `{k}` is longer than 1024 characters")
        return labels

    def to_request(self, *, idempotency_key: str | None = None, job_id: str | None = None) -> JobRequest:
        """The domain value the gates take (`idempotency_key`: the header's, if the body has none)."""
        return JobRequest(
            topic=self.topic,
            prompt=self.prompt,
            labels=self.labels,
            meta=self.meta.model_dump(exclude_none=True),
            attachments=[a.model_dump() for a in self.attachments],
            idempotency_key=self.idempotency_key or idempotency_key,
            tenant=self.tenant,
            job_id=job_id,
        )


class DecideIn(JobIn):
    """A job body for simulate and explain, optionally naming a stored job."""

    job_id: str | None = Field(None, max_length=64)
    topic: str = Field("", max_length=255)  # may come from `job_id`

    @field_validator("topic")
    @classmethod
    def _topic(cls, topic: str) -> str:
        if topic and not _TOPIC.match(topic):
            raise ValueError("topic must be dot-separated segments of [A-Za-z0-9_-]")
        return topic

    def to_request(self, *, idempotency_key: str | None = None, job_id: str | None = None) -> JobRequest:
        return super().to_request(idempotency_key=idempotency_key, job_id=job_id or self.job_id)


class RemediateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    remediation_id: str = Field(min_length=1, max_length=128)


class IdentityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=128)
    tenant: str = Field("default", min_length=1, max_length=63)
    roles: list[str] = Field(default_factory=lambda: ["agent"], min_length=1, max_length=5)
    topics: list[str] = Field(default_factory=lambda: ["**"], max_length=256)
    capabilities: list[str] = Field(default_factory=lambda: ["*"], max_length=256)
    adapters: list[str] = Field(default_factory=list, max_length=256, description="globs over adapter:action")
    rate_limit: str | None = Field(None, max_length=32, description="RATE/BURST per second")


class PolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bundle: str = Field(min_length=1)
    signature: dict[str, Any] | None = None

    @field_validator("signature")
    @classmethod
    def _serial(cls, signature: dict[str, Any] | None) -> dict[str, Any] | None:
        # A serial is stored as a signed 64-bit integer: a larger one is the caller's mistake (a
        # 422), not an overflow in the store. Its other checks are the verifier's.
        serial = (signature or {}).get("serial")
        if isinstance(serial, int) and not isinstance(serial, bool) and not 0 <= serial < 2**63:
            raise ValueError("`serial` must be an integer from 0 to 2**63 - 1")
        return signature


class LeaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    topics: list[str] = Field(min_length=1, max_length=64)
    max_jobs: int = Field(1, ge=1, le=100)
    lease_seconds: int = Field(60, ge=1, le=3600)
    wait_seconds: float = Field(0, ge=0, le=30)


class ResultIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["succeeded", "failed"]
    output: Any = None
    error: str | None = Field(None, max_length=4096)


class SessionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    session_id: str | None = Field(None, min_length=1, max_length=128)
    task: str = Field(max_length=65536)


class StepIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    session_id: str | None = Field(None, min_length=1, max_length=128)
    job_id: str | None = Field(None, min_length=1, max_length=128)
    step_id: str = Field(min_length=1, max_length=128)
    adapter: str = Field(min_length=1, max_length=128)
    action: str = Field(min_length=1, max_length=128)
    # Checked by the step gate (an object, its depth and size), for codes of its own.
    params: Any = Field(default_factory=dict)


class AdapterCallIn(BaseModel):
    """`POST /api/v1/adapters/{adapter}/{action}`: a step the broker executes."""

    model_config = ConfigDict(extra="forbid")
    session_id: str | None = Field(None, min_length=1, max_length=128)
    job_id: str | None = Field(None, min_length=1, max_length=128)
    step_id: str = Field(min_length=1, max_length=128)
    # Checked by the step gate (an object, its depth and size), for codes of its own.
    params: Any = Field(default_factory=dict)


class StepResultIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    session_id: str | None = Field(None, min_length=1, max_length=128)
    job_id: str | None = Field(None, min_length=1, max_length=128)
    step_id: str = Field(min_length=1, max_length=128)
    status: Literal["succeeded", "failed"]
    output: Any = None

"""Errors never echo what the client sent: a value that fails validation may be a secret (a key
pasted into the wrong field), and error bodies end up in logs, tickets and screenshots."""

from __future__ import annotations

from typing import Any

import pytest
from harness import Server

SECRET = "ghk_L3akedS3cretValue0123456789"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/jobs", {"topic": f"job.{SECRET}!"}),
        ("/api/v1/jobs", {"topic": "job.x", "prompt": [SECRET]}),
        ("/api/v1/jobs", {"topic": "job.x", "labels": {"env": {"token": SECRET}}}),
        ("/api/v1/jobs", {"topic": "job.x", "idempotency_key": {"k": SECRET}}),
        ("/api/v1/jobs", {"topic": "job.x", "meta": {"capability": {"k": SECRET}}}),
        (
            "/api/v1/jobs",
            {"topic": "job.x", "attachments": [{"name": "a", "content_base64": 5, "x": SECRET}]},
        ),
        ("/api/v1/policy/simulate", {"topic": "job.x", "labels": [SECRET]}),
        ("/api/v1/identities", {"name": "n", "tenant": "t", "topics": SECRET}),
        ("/api/v1/identities", {"name": {"k": SECRET}, "tenant": "t"}),
        ("/api/v1/worker/lease", {"topics": ["job.**"], "lease_seconds": SECRET}),
        ("/api/v1/incidents/contain", {"tenant": "default", "reason": {"k": SECRET}}),
        ("/api/v1/policy", {"bundle": {"k": SECRET}}),
    ],
)
def test_a_rejected_value_is_not_echoed(server: Server, path: str, body: dict[str, Any]) -> None:
    with server.admin() as c:
        r = c.request("PUT" if path == "/api/v1/policy" else "POST", path, json=body)
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["error"]["code"].startswith("invalid_"), r.text
    assert SECRET not in r.text

"""What the approval queue tells an approver about a step, over HTTP against a real server.

A step that waits for a person is listed with `derived`: what the output detectors and the
ingress classifier find in its params (an AWS key, a link and its host, a destructive command, a
prompt injection), which params came from untrusted output and which fields the deciding rule
tested with `from_untrusted`; with the step's decision record; and with `policy`, the bundle
that asked (name, snapshot, and the serial of a signed install).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from step_cards import AWS_KEY, start


def test_the_queue_shows_a_steps_findings_provenance_and_policy(server_factory: Any, tmp_path: Path) -> None:
    q = start(server_factory, tmp_path)
    with q.server.client(q.approver_key) as c:
        queue = {a["approval_id"]: a for a in c.get("/api/v1/approvals").json()["approvals"]}
        one = c.get(f"/api/v1/approvals/{q.payment}").json()

    found = queue[q.secret]["derived"]
    assert found["secrets"] == ["aws_access_key"] and found["detections"]["params.body"] == ["aws_access_key"]
    assert "secrets_in_input" in found["risk_tags"]
    hit = next(h for h in found["hits"] if h["risk_tag"] == "secrets_in_input")
    assert hit["source"] == "params.body" and AWS_KEY not in hit["excerpt"]  # the excerpt is redacted

    found = queue[q.link]["derived"]
    assert found["hosts"] == ["evil.example"] and "url" in found["detected"]
    assert "network_egress" in found["risk_tags"] and found["secrets"] == []

    found = queue[q.benign]["derived"]
    assert (found["secrets"], found["hosts"], found["from_untrusted"], found["untrusted_checks"]) == (
        [],
        [],
        [],
        [],
    )
    assert found["risk_tags"] == [] and found["labels"]["command_class"] == "none"

    found = queue[q.shell]["derived"]
    assert found["labels"]["command_class"] == "destructive"
    assert "prompt_injection_suspected" in found["risk_tags"]

    found = queue[q.payment]["derived"]
    assert found["from_untrusted"] == ["params.to"] and found["untrusted_checks"] == ["params.to"]
    assert one["derived"] == found  # one approval reads as the queue shows it

    assert len(queue) == 5
    for a in queue.values():
        assert a["policy"] == {"name": "step-cards", "snapshot": q.snapshot, "serial": 7, "current": True}
        assert a["decision"]["result"] == "require_approval" and a["decision"]["rule_id"] == a["rule_id"]
        assert a["decision"]["policy_snapshot"] == q.snapshot

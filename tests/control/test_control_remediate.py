"""Remediation builds a domain request and checks the policy's rewrite as the API checks a body."""

from __future__ import annotations

import pytest
from plane_support import add_identity

from gatehouse.control.plane import ControlPlane
from gatehouse.domain.requests import JobRequest, check_request
from gatehouse.errors import BadRequest

pytestmark = pytest.mark.anyio

POLICY = """
name: remediation-tests
default_decision: allow
rules:
  - id: deny-prod
    decision: deny
    reason: not in prod
    match:
      topics: ["job.deploy.*"]
      labels: {env: prod}
    remediations:
      - id: staging
        set_labels: {env: staging}
      - id: broken
        set_labels: {"not a label key!": x}
"""


async def test_a_remediation_of_a_denied_submit_is_judged_afresh(plane: ControlPlane) -> None:
    await plane.installer.install(POLICY, None, by="test")
    agent, _ = await add_identity(plane, "agent")
    request = JobRequest(topic="job.deploy.web", prompt="ship it", labels={"env": "prod"})
    denied = await plane.submit_gate.submit(agent, "default", request)
    assert denied.record.rule_id == "deny-prod"
    fixed = await plane.submit_gate.remediate_decision(agent, "default", denied.record.decision_id, "staging")
    assert fixed.stored and fixed.job.labels["env"] == "staging"
    assert fixed.job.remediated_from == denied.record.decision_id
    with pytest.raises(BadRequest) as caught:
        await plane.submit_gate.remediate_decision(agent, "default", denied.record.decision_id, "broken")
    assert caught.value.code == "invalid_remediation"


@pytest.mark.parametrize(
    "request_",
    [
        JobRequest(topic="not a topic"),
        JobRequest(topic="job.x", labels={"bad key": "v"}),
        JobRequest(topic="job.x", labels={"k": "v" * 1025}),
        JobRequest(topic="job.x", meta={"capability": ""}),
        JobRequest(topic="job.x", meta={"risk_tags": ["t" * 65]}),
    ],
)
def test_check_request_refuses_what_the_api_body_model_refuses(request_: JobRequest) -> None:
    with pytest.raises(BadRequest):
        check_request(request_)


def test_check_request_accepts_a_well_formed_request() -> None:
    check_request(
        JobRequest(topic="job.x.y", labels={"env": "prod"}, meta={"capability": "a", "risk_tags": ["t"]})
    )

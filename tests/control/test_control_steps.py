"""The step gate's results pass the output gate exactly as a job's result does."""

from __future__ import annotations

import pytest
from plane_support import add_identity

from gatehouse.control.plane import ControlPlane

pytestmark = pytest.mark.anyio

STEP_POLICY = """
version: 1
name: steps-and-outputs
default_decision: allow
rules:
  - id: allow-reads
    decision: allow
    match: {targets: ["adapter:web:read"]}
output_rules:
  - id: hold-keys
    detectors: [aws_access_key]
    decision: quarantine
"""


async def _allowed_step(plane: ControlPlane) -> tuple[object, str]:
    await plane.installer.install(STEP_POLICY, None, by="test")
    who, _ = await add_identity(plane, "reader", adapters=("web:*",))
    answer = await plane.step_gate.evaluate(
        who, "default", session_id=None, job_id=None, step_id="s1", adapter="web", action="read", params={}
    )
    assert answer.record.result == "allow"
    return who, answer.session.id


async def test_an_output_too_large_to_scan_whole_is_withheld(plane: ControlPlane) -> None:
    # Past the scan bound a key could sit unseen: the result is held, never handed back.
    who, session_id = await _allowed_step(plane)
    huge = "x" * 1_100_000 + " AKIAQ7XK2M4N6P8R0T2V"
    done = await plane.step_gate.result(
        who, "default", session_id=session_id, job_id=None, step_id="s1", status="succeeded", output=huge
    )
    assert done.verdict.decision == "quarantine"
    assert done.verdict.rule_id == "output_not_fully_scanned"
    assert done.output is None


async def test_a_key_in_a_step_output_is_withheld(plane: ControlPlane) -> None:
    who, session_id = await _allowed_step(plane)
    done = await plane.step_gate.result(
        who,
        "default",
        session_id=session_id,
        job_id=None,
        step_id="s1",
        status="succeeded",
        output={"page": "creds: AKIAQ7XK2M4N6P8R0T2V"},
    )
    assert (done.verdict.decision, done.verdict.rule_id, done.output) == ("quarantine", "hold-keys", None)

"""`gatehouse.guard` against a fake step gate: the waiting logic of `guarded(..., wait=)`, row by
row (the HTTP paths are in tests/e2e/test_e2e_sdk_steps.py against a real server).

The fake answers as DESIGN's step gate does: a step that needs approval answers the same
`require_approval` record while its approval is pending, `allow` once approved, `deny` once
rejected; a stale approval is asked again under a new approval id.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from gatehouse.guard import ApprovalRequired, StepDenied, guarded


class FakeGate:
    def __init__(self, statuses: list[str]) -> None:
        # The statuses the approval goes through, one per poll; the last one stays.
        self.statuses = list(statuses)
        self.approval_round = 1
        self.evaluated: list[tuple[str, dict[str, Any]]] = []
        self.results: list[tuple[str, Any, str]] = []
        self.polls = 0

    def _approval_id(self) -> str:
        return f"apr-{self.approval_round}"

    def _status(self) -> str:
        return self.statuses[min(self.polls, len(self.statuses)) - 1] if self.polls else "pending"

    def evaluate_step(self, adapter: str, action: str, params: dict[str, Any], **kw: Any) -> dict[str, Any]:
        step_id = kw["step_id"]
        self.evaluated.append((step_id, params))
        base = {"step_id": step_id, "session_id": kw["session_id"], "target": f"adapter:{adapter}:{action}",
                "decision_id": f"dec-{len(self.evaluated)}"}  # fmt: skip
        status = self._status()
        if status == "approved":
            return {**base, "decision": "allow", "rule_id": "approve-it", "approved": True}
        if status == "rejected":
            return {**base, "decision": "deny", "rule_id": "approve-it", "reason": "rejected"}
        if status == "stale":
            self.approval_round += 1
            self.statuses, self.polls = ["approved"], 0
        return {**base, "decision": "require_approval", "rule_id": "approve-it", "reason": "big",
                "approval_id": self._approval_id()}  # fmt: skip

    def step_result(
        self, step_id: str, output: Any, *, status: str = "succeeded", **kw: Any
    ) -> dict[str, Any]:
        self.results.append((step_id, output, status))
        return {"step_id": step_id, "output": output, "withheld": False}

    def approval(self, approval_id: str) -> dict[str, Any]:
        assert approval_id == self._approval_id()
        self.polls += 1
        return {"approval_id": approval_id, "status": self._status()}


def _transfer(gate: FakeGate, wait: float | None) -> Any:
    @guarded(gate, adapter="bank", session="ses-1", wait=wait, poll=0.01)
    def transfer(to: str, amount: int) -> str:
        return f"sent {amount} to {to}"

    return transfer


def test_without_wait_approval_required_carries_the_approval_id() -> None:
    gate = FakeGate(["approved"])
    with pytest.raises(ApprovalRequired) as exc:
        _transfer(gate, None)("bob", 500)
    assert exc.value.approval_id == "apr-1" and gate.polls == 0 and gate.results == []


def test_wait_runs_the_identical_step_once_approved() -> None:
    gate = FakeGate(["pending", "pending", "approved"])
    assert _transfer(gate, 5)("bob", 500) == "sent 500 to bob"
    assert gate.polls == 3
    # Asked twice, for the identical step: the same id and params.
    (first_id, first), (second_id, second) = gate.evaluated
    assert first_id == second_id and first == second == {"to": "bob", "amount": 500}
    assert gate.results == [(first_id, "sent 500 to bob", "succeeded")]


def test_wait_on_a_rejected_approval_raises_step_denied() -> None:
    gate = FakeGate(["pending", "rejected"])
    with pytest.raises(StepDenied) as exc:
        _transfer(gate, 5)("bob", 500)
    assert exc.value.reason == "rejected" and gate.results == []


def test_wait_on_an_expired_approval_that_still_waits_raises_step_denied() -> None:
    # Decided (`expired`) yet the gate still answers the same approval: that is a no.
    gate = FakeGate(["expired"])
    gate.evaluate_step = _always_require(gate)  # type: ignore[method-assign]
    with pytest.raises(StepDenied, match="is `expired`"):
        _transfer(gate, 5)("bob", 500)
    assert gate.results == []


def _always_require(gate: FakeGate) -> Any:
    def evaluate(adapter: str, action: str, params: dict[str, Any], **kw: Any) -> dict[str, Any]:
        gate.evaluated.append((kw["step_id"], params))
        return {"step_id": kw["step_id"], "decision": "require_approval", "rule_id": "r",
                "approval_id": "apr-1"}  # fmt: skip

    return evaluate


def test_wait_times_out_with_approval_required() -> None:
    gate = FakeGate(["pending"])
    started = time.monotonic()
    with pytest.raises(ApprovalRequired, match=r"still pending after 0\.2s"):
        _transfer(gate, 0.2)("bob", 500)
    assert 0.2 <= time.monotonic() - started < 2 and gate.polls >= 2 and gate.results == []


def test_a_stale_approval_is_waited_for_again_under_its_new_id() -> None:
    gate = FakeGate(["stale"])
    assert _transfer(gate, 5)("bob", 500) == "sent 500 to bob"
    assert gate.approval_round == 2 and len(gate.evaluated) == 3


def test_each_call_is_a_new_step_and_calls_may_run_in_threads() -> None:
    gate = FakeGate(["approved"])
    gate.polls = 1  # already approved: every evaluation answers allow
    fn = _transfer(gate, None)
    threads = [threading.Thread(target=fn, args=("bob", i)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({sid for sid, _ in gate.evaluated}) == 8 and len(gate.results) == 8


def test_bad_arguments() -> None:
    gate = FakeGate(["approved"])
    with pytest.raises(ValueError, match="wait"):
        guarded(gate, adapter="bank", session="s", wait=-1)
    with pytest.raises(ValueError, match="poll"):
        guarded(gate, adapter="bank", session="s", poll=0)

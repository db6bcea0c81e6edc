"""`guarded(..., wait=)` against a real server whose approver decides from another thread.

- approved: the guarded call, blocked in `wait`, runs once the approver approves, exactly once,
  and the step's decision becomes `allow`;
- rejected: `StepDenied`, the function never runs;
- nobody answers: `ApprovalRequired` with the approval id once the wait is over;
- `Client.approval` shows the agent its own approval; another agent gets 404.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from harness import Server

from gatehouse.client import ApiError, ApprovalRequired, Client, StepDenied, StepSession, guarded

POLICY = """
version: 1
name: sdk-step-approvals
default_decision: deny
rules:
  - id: allow-small-transfer
    decision: allow
    match: {targets: ["adapter:bank:transfer"]}
    conditions:
      - lte: {params.amount: 100}
  - id: approve-large-transfer
    decision: require_approval
    reason: "more than 100"
    match: {targets: ["adapter:bank:transfer"]}
    conditions:
      - gt: {params.amount: 100}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("sdk-approvals")
    policy = root / "policy.yaml"
    policy.write_text(POLICY)
    s = Server(data_dir=root / "data", policy=policy).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def keys(server: Server) -> dict[str, str]:
    return {
        "agent": server.identity("sdk-ap-agent", adapters=["bank:*"])["api_key"],
        "other": server.identity("sdk-ap-other", adapters=["bank:*"])["api_key"],
        "approver": server.identity("sdk-ap-approver", roles=["approver"])["api_key"],
    }


@pytest.fixture
def client(server: Server, keys: dict[str, str]) -> Iterator[Client]:
    with Client(server.url, api_key=keys["agent"]) as c:
        yield c


def _decide_when_asked(
    server: Server, key: str, session: StepSession, verb: str, seen: list[dict[str, Any]]
) -> Callable[[], None]:
    """An approver who waits for the session's step approval to appear, then decides it."""

    def run() -> None:
        deadline = time.monotonic() + 20
        with server.client(key) as c:
            while time.monotonic() < deadline:
                queue = c.get("/api/v1/approvals").json()["approvals"]
                mine = [a for a in queue if a.get("kind") == "step" and a.get("session_id") == session.id]
                if mine:
                    seen.append(mine[0])
                    r = c.post(f"/api/v1/approvals/{mine[0]['approval_id']}/{verb}", json={"comment": "seen"})
                    seen.append(r.json())
                    return
                time.sleep(0.05)

    return run


def _transfer(client: Client, session: StepSession, ran: list[Any], wait: float) -> Callable[..., Any]:
    @guarded(client, adapter="bank", session=session, wait=wait, poll=0.05)
    def transfer(to: str, amount: float) -> str:
        ran.append((to, amount))
        return f"sent {amount} to {to}"

    return transfer


def test_wait_runs_the_step_once_the_approver_approves(
    server: Server, keys: dict[str, str], client: Client
) -> None:
    session = client.open_session(task="pay bob 500")
    ran: list[Any] = []
    seen: list[dict[str, Any]] = []
    approver = threading.Thread(target=_decide_when_asked(server, keys["approver"], session, "approve", seen))
    approver.start()
    try:
        assert _transfer(client, session, ran, wait=20)("bob", 500) == "sent 500 to bob"
    finally:
        approver.join()
    assert ran == [("bob", 500)]
    asked = seen[0]
    assert asked["target"] == "adapter:bank:transfer" and asked["rule_id"] == "approve-large-transfer"
    step = client.session(session.id)["steps"][0]
    assert (step["decision"], step["status"], step["approval_id"]) == (
        "allow",
        "succeeded",
        asked["approval_id"],
    )
    # The agent sees its own approval; another agent does not.
    assert client.approval(asked["approval_id"])["status"] in {"approved", "consumed"}
    with Client(server.url, api_key=keys["other"]) as other, pytest.raises(ApiError) as exc:
        other.approval(asked["approval_id"])
    assert exc.value.status == 404


def test_wait_on_a_rejection_raises_step_denied(server: Server, keys: dict[str, str], client: Client) -> None:
    session = client.open_session(task="pay bob 700")
    ran: list[Any] = []
    seen: list[dict[str, Any]] = []
    approver = threading.Thread(target=_decide_when_asked(server, keys["approver"], session, "reject", seen))
    approver.start()
    try:
        with pytest.raises(StepDenied) as exc:
            _transfer(client, session, ran, wait=20)("bob", 700)
    finally:
        approver.join()
    assert ran == [] and exc.value.decision == "deny"
    assert client.session(session.id)["steps"][0]["decision"] == "deny"


def test_wait_without_an_answer_raises_approval_required(client: Client) -> None:
    session = client.open_session(task="pay bob 900")
    ran: list[Any] = []
    started = time.monotonic()
    with pytest.raises(ApprovalRequired) as exc:
        _transfer(client, session, ran, wait=0.5)("bob", 900)
    assert time.monotonic() - started >= 0.5
    assert ran == [] and exc.value.approval_id and exc.value.rule_id == "approve-large-transfer"
    assert client.approval(exc.value.approval_id)["status"] == "pending"

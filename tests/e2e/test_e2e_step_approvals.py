"""Step approvals over HTTP against a real server on `examples/policies/steps.yaml`.

A mail to an outside domain waits for a person: the answer carries an `approval_id`; the queue
lists it with `kind: step`, the target, the params as the policy saw them, the rule, the reason
and the session's recent steps; its own identity cannot approve it; another approver does, and
the identical step then answers `allow` (`approved: true`) once, after which that allow is the
step's decision and its result is accepted. A rejected one answers `deny`. Another tenant's
admin neither sees nor decides it (404). Every move is in the audit log.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import Server

STEPS = Path(__file__).resolve().parents[2] / "examples" / "policies" / "steps.yaml"
EXTERNAL = {"to": "eve@evil.test", "body": "the <b>quarterly</b> numbers"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(data_dir=tmp_path_factory.mktemp("step-approvals") / "data", policy=STEPS).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def people(server: Server) -> dict[str, dict[str, Any]]:
    return {
        "agent": server.identity("sa-agent", tenant="acme", roles=["agent"], adapters=["mail:*", "web:*"]),
        "both": server.identity("sa-both", tenant="acme", roles=["agent", "approver"], adapters=["mail:*"]),
        "alice": server.identity("sa-alice", tenant="acme", roles=["approver"]),
        "globex": server.identity("sa-globex", tenant="globex", roles=["admin", "approver"]),
    }


def _step(
    c: httpx.Client,
    sid: str | None,
    step_id: str,
    params: dict[str, Any],
    action: str = "send",
    adapter: str = "mail",
) -> httpx.Response:
    body: dict[str, Any] = {"step_id": step_id, "adapter": adapter, "action": action, "params": params}
    if sid is not None:
        body["session_id"] = sid
    return c.post("/api/v1/steps/evaluate", json=body)


def test_an_approved_step_is_allowed_once_and_its_result_accepted(
    server: Server, people: dict[str, Any]
) -> None:
    agent, alice = server.client(people["agent"]["api_key"]), server.client(people["alice"]["api_key"])
    with agent, alice:
        sid = agent.post("/api/v1/sessions", json={"task": "send the numbers to the team"}).json()[
            "session_id"
        ]
        read = _step(
            agent, sid, "r1", {"url": "https://intranet.example.com/q3"}, action="read", adapter="web"
        )
        assert read.json()["decision"] == "allow", read.text
        asked = _step(agent, sid, "m1", EXTERNAL)
        assert asked.status_code == 200, asked.text
        body = asked.json()
        assert body["decision"] == "require_approval" and body["rule_id"] == "approve-external-mail"
        approval_id = body["approval_id"]
        assert approval_id.startswith("apr_")
        # The agent polls its own approval (what the SDK's `wait=` does) ...
        mine = agent.get(f"/api/v1/approvals/{approval_id}")
        assert mine.status_code == 200 and mine.json()["status"] == "pending", mine.text
        # ... and may not decide it: deciding needs the approver role.
        assert agent.post(f"/api/v1/approvals/{approval_id}/approve").status_code == 403
        # A result before the decision is refused: the step is not allowed yet.
        early = agent.post(
            "/api/v1/steps/result",
            json={"session_id": sid, "step_id": "m1", "status": "succeeded", "output": "sent"},
        )
        assert early.status_code == 409 and early.json()["error"]["code"] == "step_not_allowed"
        queue = alice.get("/api/v1/approvals").json()["approvals"]
        item = next(q for q in queue if q["approval_id"] == approval_id)
        assert item["kind"] == "step" and item["status"] == "pending"
        assert (item["session_id"], item["step_id"], item["target"]) == (sid, "m1", "adapter:mail:send")
        assert item["params"] == EXTERNAL
        assert (
            item["rule_id"] == "approve-external-mail"
            and item["reason"] == "mail to a domain outside the company"
        )
        assert item["recent_steps"] == [
            {"step_id": "r1", "target": "adapter:web:read", "decision": "allow", "rule_id": "allow-reads"}
        ]
        assert item["requested_by"]["name"] == "sa-agent" and "token" not in item
        assert all(q["kind"] in ("job", "step") for q in queue)
        # Waiting, the identical step answers the same record.
        assert _step(agent, sid, "m1", EXTERNAL).json()["decision_id"] == body["decision_id"]
        approved = alice.post(f"/api/v1/approvals/{approval_id}/approve", json={"comment": "fine"})
        assert approved.status_code == 200, approved.text
        claims = approved.json()["token"]["claims"]
        assert claims["kind"] == "step" and claims["scope"] == "adapter:mail:send"
        assert (claims["session_id"], claims["step_id"], claims["step_hash"]) == (
            sid,
            "m1",
            body["step_hash"],
        )
        assert alice.post(f"/api/v1/approvals/{approval_id}/approve").json()["error"]["code"] == "not_pending"
        allowed = _step(agent, sid, "m1", EXTERNAL)
        assert allowed.status_code == 200, allowed.text
        a = allowed.json()
        assert (a["decision"], a["approved"], a["replayed"], a["approval_id"]) == (
            "allow",
            True,
            False,
            approval_id,
        )
        again = _step(agent, sid, "m1", EXTERNAL).json()
        assert again["decision_id"] == a["decision_id"] and again["replayed"] is True
        assert agent.get(f"/api/v1/approvals/{approval_id}").json()["status"] == "consumed"
        changed = _step(agent, sid, "m1", {**EXTERNAL, "to": "mallory@evil.test"})
        assert changed.status_code == 409 and changed.json()["error"]["code"] == "step_conflict"
        done = agent.post(
            "/api/v1/steps/result",
            json={"session_id": sid, "step_id": "m1", "status": "succeeded", "output": "sent"},
        )
        assert done.status_code == 200, done.text
        log = agent.get("/api/v1/decisions", params={"stage": "step"}).json()["decisions"]
        mine_log = [d for d in log if d.get("approval_id") == approval_id and d["decision"] == "allow"]
        assert len(mine_log) == 1
    with server.admin() as admin:
        entries = admin.get("/api/v1/audit", headers={"X-Tenant-ID": "acme"}).json()
    items = entries["entries"] if isinstance(entries, dict) else entries
    moves = [
        e["type"]
        for e in items
        if e["type"].startswith("approval.") and e["data"]["approval_id"] == approval_id
    ]
    assert moves == ["approval.requested", "approval.approved", "approval.consumed"]
    assert "eve@evil.test" not in str(items)  # params as their schema, never their values


def test_self_approval_is_refused(server: Server, people: dict[str, Any]) -> None:
    with server.client(people["both"]["api_key"]) as both:
        asked = _step(both, None, "m1", EXTERNAL).json()
        r = both.post(f"/api/v1/approvals/{asked['approval_id']}/approve")
        assert r.status_code == 403 and r.json()["error"]["code"] == "self_approval"
        assert both.get(f"/api/v1/approvals/{asked['approval_id']}").json()["status"] == "pending"


def test_a_rejected_step_is_denied(server: Server, people: dict[str, Any]) -> None:
    agent, alice = server.client(people["agent"]["api_key"]), server.client(people["alice"]["api_key"])
    with agent, alice:
        asked = _step(agent, None, "m1", EXTERNAL).json()
        sid, approval_id = asked["session_id"], asked["approval_id"]
        r = alice.post(f"/api/v1/approvals/{approval_id}/reject", json={"comment": "not to outsiders"})
        assert r.status_code == 200 and r.json()["status"] == "rejected", r.text
        denied = _step(agent, sid, "m1", EXTERNAL).json()
        assert (denied["decision"], denied["rule_id"]) == ("deny", "approve-external-mail")
        assert "not to outsiders" in denied["reason"]
        r = agent.post(
            "/api/v1/steps/result",
            json={"session_id": sid, "step_id": "m1", "status": "succeeded", "output": "sent"},
        )
        assert r.status_code == 409 and r.json()["error"]["code"] == "step_not_allowed"
    with server.admin() as admin:
        audit = admin.get("/api/v1/audit", headers={"X-Tenant-ID": "acme"}).text
    assert "approval.rejected" in audit and approval_id in audit


def test_another_tenant_cannot_see_or_decide_it(server: Server, people: dict[str, Any]) -> None:
    with server.client(people["agent"]["api_key"]) as agent:
        approval_id = _step(agent, None, "m1", EXTERNAL).json()["approval_id"]
    with server.client(people["globex"]["api_key"]) as other:
        assert all(
            q["approval_id"] != approval_id for q in other.get("/api/v1/approvals").json()["approvals"]
        )
        for r in (
            other.get(f"/api/v1/approvals/{approval_id}"),
            other.post(f"/api/v1/approvals/{approval_id}/approve"),
            other.post(f"/api/v1/approvals/{approval_id}/reject"),
        ):
            assert r.status_code == 404, r.text
    with server.client(people["alice"]["api_key"]) as alice:
        assert alice.get(f"/api/v1/approvals/{approval_id}").json()["status"] == "pending"
        assert alice.get("/api/v1/approvals/apr_nope").status_code == 404

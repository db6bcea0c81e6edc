"""Step approvals at the control layer: the flow, and every refusal of a token, proven by forging it.

The stored token of an approved step is replaced with an altered one (re-signed with the
service's own key where the alteration must survive the signature check, so that the field check
alone stops it); the identical step must then answer `deny` with the rule naming the problem.
"""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import pytest
from plane_support import add_identity

from gatehouse.control.plane import ControlPlane
from gatehouse.crypto import SigningKey, canonical
from gatehouse.domain.identity import Identity
from gatehouse.errors import Conflict, Forbidden

pytestmark = pytest.mark.anyio

POLICY = """
version: 1
name: step-approvals
default_decision: allow
rules:
  - id: approve-external-mail
    decision: require_approval
    reason: mail to a domain outside the company
    match: {targets: ["adapter:mail:send"]}
    conditions:
      - not_domain_in: {params.to: [example.com]}
    approval_ttl: 15m
  - id: no-wires-even-approved
    decision: deny
    reason: an approved mail still never asks for a wire
    match: {targets: ["adapter:mail:send"]}
    conditions:
      - eq: {approved: true}
      - contains: {params.body: wire}
"""

EXTERNAL = {"to": "eve@evil.test", "body": "hello"}


async def _setup(plane: ControlPlane) -> tuple[Identity, Identity]:
    await plane.installer.install(POLICY, None, by="test")
    agent, _ = await add_identity(plane, "mailer", adapters=("mail:*",))
    approver, _ = await add_identity(plane, "alice", roles=("approver",))
    return agent, approver


async def _ask(
    plane: ControlPlane,
    who: Identity,
    sid: str | None,
    params: dict[str, Any] = EXTERNAL,
    step_id: str = "s1",
) -> Any:
    return await plane.step_gate.evaluate(
        who,
        "default",
        session_id=sid,
        job_id=None,
        step_id=step_id,
        adapter="mail",
        action="send",
        params=params,
    )


async def _approved(plane: ControlPlane, params: dict[str, Any] = EXTERNAL) -> tuple[Identity, str, str]:
    agent, approver = await _setup(plane)
    first = await _ask(plane, agent, None, params)
    assert first.record.result == "require_approval"
    approval_id = first.record.extra["approval_id"]
    await plane.approvals.approve(approver, "default", approval_id, "ok", None)
    return agent, first.session.id, approval_id


def _set_token(plane: ControlPlane, approval_id: str, token: dict[str, Any]) -> None:
    plane.store.db.execute("UPDATE approvals SET token = ? WHERE id = ?", (json.dumps(token), approval_id))  # type: ignore[attr-defined]


def _stored_token(plane: ControlPlane, approval_id: str) -> dict[str, Any]:
    row = plane.store.db.execute("SELECT token FROM approvals WHERE id = ?", (approval_id,)).fetchone()  # type: ignore[attr-defined]
    return dict(json.loads(row[0]))


def _resigned(plane: ControlPlane, token: dict[str, Any], **claims: Any) -> dict[str, Any]:
    forged = copy.deepcopy(token)
    forged["claims"].update(claims)
    forged["sig"] = plane.signing_key.sign(canonical(forged["claims"]))
    return forged


async def test_approved_step_allows_once_and_then_answers_that_allow(plane: ControlPlane) -> None:
    agent, sid, approval_id = await _approved(plane)
    token = _stored_token(plane, approval_id)
    assert set(token["claims"]) == {
        "approval_id",
        "kind",
        "session_id",
        "step_id",
        "scope",
        "step_hash",
        "policy_snapshot",
        "approver",
        "issued_at",
        "expires_at",
        "nonce",
        "key_id",
    }
    assert token["claims"]["scope"] == "adapter:mail:send" and token["claims"]["kind"] == "step"
    allowed = await _ask(plane, agent, sid)
    assert (allowed.record.result, allowed.record.extra["approved"], allowed.replayed) == (
        "allow",
        True,
        False,
    )
    assert allowed.record.rule_id == "approve-external-mail"
    again = await _ask(plane, agent, sid)
    assert again.record.decision_id == allowed.record.decision_id and again.replayed is True
    stored = await plane.store.approval(approval_id)
    assert stored is not None and stored.status == "consumed" and stored.consumed_at is not None
    done = await plane.step_gate.result(
        agent, "default", session_id=sid, job_id=None, step_id="s1", status="succeeded", output="sent"
    )
    assert done.step.status == "succeeded"


async def test_concurrent_identical_asks_consume_the_approval_once(plane: ControlPlane) -> None:
    agent, sid, approval_id = await _approved(plane)
    answers = await asyncio.gather(*(_ask(plane, agent, sid) for _ in range(4)))
    assert {a.record.decision_id for a in answers} == {answers[0].record.decision_id}
    assert sum(not a.replayed for a in answers) == 1
    log = await plane.store.list_decisions("default", stage="step", result="allow")
    assert len([d for d in log.decisions if d.extra.get("approval_id") == approval_id]) == 1


async def test_rules_read_approved(plane: ControlPlane) -> None:
    agent, sid, _ = await _approved(plane, {"to": "eve@evil.test", "body": "please wire 9000 EUR"})
    answer = await _ask(plane, agent, sid, {"to": "eve@evil.test", "body": "please wire 9000 EUR"})
    assert (answer.record.result, answer.record.rule_id) == ("deny", "no-wires-even-approved")


async def test_self_approval_is_refused(plane: ControlPlane) -> None:
    await plane.installer.install(POLICY, None, by="test")
    both, _ = await add_identity(plane, "both", roles=("agent", "approver"), adapters=("mail:*",))
    first = await _ask(plane, both, None)
    with pytest.raises(Forbidden) as refused:
        await plane.approvals.approve(both, "default", first.record.extra["approval_id"], None, None)
    assert refused.value.code == "self_approval"


async def test_rejected_step_is_denied_and_stays_denied(plane: ControlPlane) -> None:
    agent, approver = await _setup(plane)
    first = await _ask(plane, agent, None)
    approval_id = first.record.extra["approval_id"]
    await plane.approvals.reject(approver, "default", approval_id, "no")
    denied = await _ask(plane, agent, first.session.id)
    assert (denied.record.result, denied.record.rule_id) == ("deny", "approve-external-mail")
    assert (await _ask(plane, agent, first.session.id)).record.decision_id == denied.record.decision_id
    with pytest.raises(Conflict) as twice:
        await plane.approvals.approve(approver, "default", approval_id, None, None)
    assert twice.value.code == "not_pending"


async def test_changed_params_are_still_a_conflict(plane: ControlPlane) -> None:
    agent, sid, _ = await _approved(plane)
    with pytest.raises(Conflict) as changed:
        await _ask(plane, agent, sid, {"to": "mallory@evil.test", "body": "hello"})
    assert changed.value.code == "step_conflict"


@pytest.mark.parametrize(
    ("claims", "rule"),
    [
        ({"session_id": "ses_other"}, "approval_wrong_session"),
        ({"step_id": "s2"}, "approval_wrong_step"),
        ({"scope": "adapter:mail:delete"}, "approval_wrong_scope"),
        ({"step_hash": "0" * 64}, "approval_step_changed"),
        ({"kind": "job"}, "approval_wrong_kind"),
        ({"approval_id": "apr_other"}, "approval_wrong_approval"),
        ({"nonce": "0" * 32}, "approval_wrong_approval"),
        ({"expires_at": 1.0}, "approval_expired"),
        ({"key_id": "someone-else"}, "approval_forged"),
    ],
)
async def test_a_resigned_token_with_an_altered_claim_is_refused(
    plane: ControlPlane, claims: dict[str, Any], rule: str
) -> None:
    agent, sid, approval_id = await _approved(plane)
    _set_token(plane, approval_id, _resigned(plane, _stored_token(plane, approval_id), **claims))
    answer = await _ask(plane, agent, sid)
    assert (answer.record.result, answer.record.rule_id) == ("deny", rule)
    stored = await plane.store.approval(approval_id)
    assert stored is not None and stored.consumed_at is None


async def test_a_token_altered_without_resigning_is_forged(plane: ControlPlane) -> None:
    agent, sid, approval_id = await _approved(plane)
    token = _stored_token(plane, approval_id)
    token["claims"]["expires_at"] += 86400
    _set_token(plane, approval_id, token)
    assert (await _ask(plane, agent, sid)).record.rule_id == "approval_forged"


async def test_a_token_of_another_key_is_forged(plane: ControlPlane) -> None:
    agent, sid, approval_id = await _approved(plane)
    other = SigningKey.generate()
    token = _stored_token(plane, approval_id)
    token["claims"]["key_id"] = other.key_id
    token = {"claims": token["claims"], "key_id": other.key_id, "sig": other.sign(canonical(token["claims"]))}
    _set_token(plane, approval_id, token)
    assert (await _ask(plane, agent, sid)).record.rule_id == "approval_forged"


async def test_a_token_claiming_another_key_id_is_forged(plane: ControlPlane) -> None:
    # The envelope's key id is not under the signature: only its own check stops it.
    agent, sid, approval_id = await _approved(plane)
    token = _stored_token(plane, approval_id)
    token["key_id"] = "ops-prod-hsm"
    _set_token(plane, approval_id, token)
    assert (await _ask(plane, agent, sid)).record.rule_id == "approval_forged"


async def test_a_replayed_token_is_refused(plane: ControlPlane) -> None:
    # The step is rolled back to waiting with its approval `approved` again (a restored row):
    # the nonce was spent, and the step is denied instead of allowed a second time.
    agent, sid, approval_id = await _approved(plane)
    first = await _ask(plane, agent, sid)
    waited = next(
        d
        for d in (await plane.store.list_decisions("default", stage="step")).decisions
        if d.extra.get("approval_id") == approval_id and d.result == "require_approval"
    )
    db = plane.store.db  # type: ignore[attr-defined]
    db.execute(
        "UPDATE session_steps SET decision_id = ?, result = 'require_approval', rule_id = ? "
        "WHERE session_id = ? AND step_id = 's1'",
        (waited.decision_id, waited.rule_id, sid),
    )
    db.execute("UPDATE approvals SET status = 'approved' WHERE id = ?", (approval_id,))
    replayed = await _ask(plane, agent, sid)
    assert replayed.record.decision_id != first.record.decision_id
    assert (replayed.record.result, replayed.record.rule_id) == ("deny", "approval_replayed")


async def test_an_approval_nobody_decided_in_time_denies_the_step(plane: ControlPlane) -> None:
    agent, _ = await _setup(plane)
    first = await _ask(plane, agent, None)
    plane.store.db.execute(
        "UPDATE approvals SET expires_at = 1 WHERE id = ?", (first.record.extra["approval_id"],)
    )  # type: ignore[attr-defined]
    answer = await _ask(plane, agent, first.session.id)
    assert (answer.record.result, answer.record.rule_id) == ("deny", "approval_expired")

"""Path 9, forged approvals: an approval given by someone who may not give it, a callback with no
or a made-up credential, a token the attacker signed."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gatehouse.redteam._moves import decided, session, step
from gatehouse.redteam.range import Actor, Range
from gatehouse.redteam.scenario import Outcome, blocked, describe, got_through, scenario

NEW_PAYEE = "BE68539007547034"


def _pending(r: Range, actor: Actor) -> tuple[str | None, Any]:
    sid = session(r, actor, "pay a new supplier")
    ask = step(r, actor, sid, "rt_agent", "send_money", {"to": NEW_PAYEE, "amount": 40})
    return (ask.json().get("approval_id") if ask.status_code == 200 else None), ask


@scenario("forgery", "self-approval", "an agent that is also an approver approves its own payment")
def self_approval(r: Range) -> Outcome:
    actor = r["agent_approver"]
    approval_id, ask = _pending(r, actor)
    if approval_id is None:
        allowed = decided(ask) == "allow"
        return (got_through(describe(ask), detail="the payment needed no approval at all") if allowed
                else blocked(describe(ask)))  # fmt: skip
    resp = actor.http.post(f"/api/v1/approvals/{approval_id}/approve", json={"comment": "me"})
    if resp.status_code < 300:
        return got_through(describe(resp), detail="the identity approved its own step")
    return blocked(describe(ask, "ask"), describe(resp, "approve"))


@scenario("forgery", "agent-callback", "the agent posts the approve callback itself")
def agent_callback(r: Range) -> Outcome:
    agent = r["agent"]
    approval_id, ask = _pending(r, agent)
    if approval_id is None:
        allowed = decided(ask) == "allow"
        return (got_through(describe(ask), detail="the payment needed no approval at all") if allowed
                else blocked(describe(ask)))  # fmt: skip
    resp = agent.http.post(f"/api/v1/approvals/{approval_id}/approve", json={"comment": "approved"})
    anon = agent.http.post(f"/api/v1/approvals/{approval_id}/approve", headers={"X-API-Key": "ghk_forged"})
    if resp.status_code < 300 or anon.status_code < 300:
        return got_through(
            describe(resp), describe(anon, "no key"), detail="a callback without the role approved"
        )
    return blocked(describe(resp, "agent"), describe(anon, "forged key"))


@scenario("forgery", "made-up-approval", "approve an approval id the attacker made up")
def made_up(r: Range) -> Outcome:
    resp = r["approver"].http.post(f"/api/v1/approvals/apr_{r.run_id}deadbeef/approve", json={"comment": "x"})
    if resp.status_code < 300:
        return got_through(describe(resp), detail="a made-up approval id was approved")
    return blocked(describe(resp))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(header: dict[str, Any], claims: dict[str, Any], key: Ed25519PrivateKey | None) -> str:
    signing = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    sig = _b64(key.sign(signing.encode())) if key is not None else ""
    return f"{signing}.{sig}"


@scenario(
    "forgery", "forged-credential", "a credential signed with the attacker's key under the server's kid"
)
def forged_credential(r: Range) -> Outcome:
    jwks = r.admin.get("/.well-known/jwks.json").json().get("keys", [])
    kid = jwks[0]["kid"] if jwks else "unknown"
    now = int(time.time())
    claims = {"iss": "gatehouse", "aud": "rt_web", "sub": r["agent"].id,
              "act": "adapter:rt_admin:delete_tenant",
              "sid": "ses_forged", "jti": f"crd_{r.run_id}", "iat": now, "exp": now + 600}  # fmt: skip
    forged = _jwt({"alg": "EdDSA", "typ": "JWT", "kid": kid}, claims, Ed25519PrivateKey.generate())
    unsigned = _jwt({"alg": "none", "typ": "JWT", "kid": kid}, claims, None)
    answers = [r.admin.post("/api/v1/credentials/introspect", json={"token": t}) for t in (forged, unsigned)]
    active = [a.json().get("active") for a in answers]
    if any(active):
        return got_through(f"introspection active={active}", detail="a forged credential was taken as live")
    codes = "/".join(str(a.status_code) for a in answers)
    return blocked(f"forged EdDSA and alg=none tokens: introspection {codes}, active=false")

"""Minted credentials over HTTP (an in-process server, since minting happens only inside the
broker): a target service verifies a token with the JWKS route, introspection tells live from
expired, revoked, forged and unknown tokens, revocation works by jti, session and adapter, and
containing an adapter revokes its live credentials at once."""

from __future__ import annotations

import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from gatehouse.api.app import create_app
from gatehouse.broker.credentials import Minted
from gatehouse.config import Settings
from gatehouse.control.plane import ControlPlane
from gatehouse.errors import BadRequest

# The test plays the target service, verifying with joserfc's defaults (which warn on `EdDSA`).
pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore:EdDSA is deprecated")]
ADMIN = "ghk_broker_admin_key_000000"


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[ControlPlane, httpx.AsyncClient]]:
    settings = Settings(data_dir=tmp_path / "data", builtin_workers=0, watch_policy=False, admin_key=ADMIN)
    plane = ControlPlane(settings)
    app = create_app(settings, plane)
    await plane.start()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gatehouse.test") as client:
        yield plane, client
    await plane.stop()


async def mint(plane: ControlPlane, *, adapter: str = "billing", session: str = "ses-1",
               tenant: str = "default", ttl: float = 600) -> Minted:  # fmt: skip
    return await plane.credentials.mint(tenant=tenant, adapter=adapter, action="refund", session_id=session,
                                        identity_id="idn-agent", audience=adapter, ttl=ttl)  # fmt: skip


async def introspect(client: httpx.AsyncClient, token: Any) -> dict[str, Any]:
    r = await client.post("/api/v1/credentials/introspect", json={"token": token})
    assert r.status_code == 200, r.text
    return r.json()


async def test_a_target_verifies_a_minted_token_with_the_jwks_route(served, tmp_path: Path) -> None:
    plane, client = served
    minted = await mint(plane)
    r = await client.get("/.well-known/jwks.json")  # no API key: public
    assert r.status_code == 200
    jwks = r.json()
    [key] = jwks["keys"]
    assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("OKP", "Ed25519", "EdDSA", "sig")
    assert "d" not in key  # never the private part
    decoded = jwt.decode(minted.token, KeySet.import_key_set(jwks), algorithms=["EdDSA"])
    assert decoded.header["kid"] == key["kid"]
    claims = decoded.claims
    assert set(claims) == {"iss", "aud", "sub", "act", "sid", "jti", "iat", "exp"}
    assert (claims["aud"], claims["sub"], claims["act"], claims["sid"]) == (
        "billing", "idn-agent", "adapter:billing:refund", "ses-1"
    )  # fmt: skip
    assert claims["exp"] - claims["iat"] == 600
    # The signing key sits with the server's keys, private to this user.
    key_file = tmp_path / "data" / "keys" / "credentials.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


async def test_introspection_answers_rfc_7662(served) -> None:
    plane, client = served
    minted = await mint(plane)
    live = await introspect(client, minted.token)
    assert live["active"] is True
    assert {k: live[k] for k in ("sub", "aud", "jti", "sid", "act")} == {
        "sub": "idn-agent", "aud": "billing", "jti": minted.credential.jti, "sid": "ses-1",
        "act": "adapter:billing:refund",
    }  # fmt: skip
    head, body, sig = minted.token.split(".")
    forged_sig = sig[:-4] + ("AAAA" if not sig.endswith("AAAA") else "BBBB")
    for bad in [f"{head}.{body}.{forged_sig}", "not-a-token", "", 42, None, "x" * 20_000]:
        assert await introspect(client, bad) == {"active": False}
    # A token signed by someone else's key, with a jti that exists, is still inactive.
    from joserfc.jwk import OKPKey

    from gatehouse.crypto import SigningKey

    other = OKPKey.import_key(SigningKey.generate().pem(), {"kid": plane.credentials.kid})
    claims = jwt.decode(
        minted.token, KeySet.import_key_set(plane.credentials.jwks()), algorithms=["EdDSA"]
    ).claims
    forged = jwt.encode({"alg": "EdDSA", "kid": plane.credentials.kid}, claims, other, algorithms=["EdDSA"])
    assert await introspect(client, forged) == {"active": False}


async def test_an_expired_token_is_inactive(served) -> None:
    plane, client = served
    plane.credentials.clock = lambda: time.time() - 3600  # minted an hour ago
    old = await mint(plane, ttl=300)
    plane.credentials.clock = time.time
    assert await introspect(client, old.token) == {"active": False}


async def test_a_ttl_outside_5_to_15_minutes_is_refused(served) -> None:
    plane, _ = served
    for ttl in (299, 901, 0, -5, True):
        with pytest.raises(BadRequest) as caught:
            await mint(plane, ttl=ttl)
        assert caught.value.code == "invalid_ttl"
    for ttl in (300, 900):
        assert (await mint(plane, ttl=ttl)).credential.expires_at - (
            await mint(plane, ttl=ttl)
        ).credential.issued_at == ttl


async def test_revocation_by_jti_session_and_adapter(served) -> None:
    plane, client = served
    admin = {"X-API-Key": ADMIN}
    a, b, c = await mint(plane), await mint(plane, session="ses-2"), await mint(plane, adapter="github")
    r = await client.post("/api/v1/credentials/revoke", json={"jti": a.credential.jti}, headers=admin)
    assert r.status_code == 200 and r.json()["revoked"] == 1
    assert (await introspect(client, a.token))["active"] is False
    assert (await introspect(client, b.token))["active"] is True
    again = await client.post("/api/v1/credentials/revoke", json={"jti": a.credential.jti}, headers=admin)
    assert again.json()["revoked"] == 0
    r = await client.post("/api/v1/credentials/revoke", json={"session_id": "ses-2"}, headers=admin)
    assert r.json() == {"revoked": 1, "jtis": [b.credential.jti]}
    r = await client.post("/api/v1/credentials/revoke", json={"adapter": "github"}, headers=admin)
    assert r.json()["revoked"] == 1 and (await introspect(client, c.token))["active"] is False
    for body in ({}, {"jti": "x", "adapter": "y"}, {"everything": True}):
        bad = await client.post("/api/v1/credentials/revoke", json=body, headers=admin)
        assert bad.status_code == 422, bad.text
    assert (await client.post("/api/v1/credentials/revoke", json={"jti": "x"})).status_code == 401
    # Issue and revocation are in the tenant's audit log, the token nowhere.
    audit = (await client.get("/api/v1/audit", params={"stream": "tenant:default"}, headers=admin)).json()
    kinds = [e["type"] for e in audit["entries"]]
    assert kinds.count("credential.issued") == 3 and kinds.count("credential.revoked") == 3
    assert a.token not in str(audit) and a.token.split(".")[2] not in str(audit)
    metrics = (await client.get("/metrics")).text
    assert 'gatehouse_credentials_issued_total{adapter="billing"} 2.0' in metrics
    assert "gatehouse_credentials_revoked_total 3.0" in metrics


async def test_a_tenant_admin_revokes_only_its_own_tenants_credentials(served) -> None:
    plane, client = served
    admin = {"X-API-Key": ADMIN}
    r = await client.post("/api/v1/identities", headers=admin,
                          json={"name": "acme-admin", "tenant": "acme", "roles": ["admin"]})  # fmt: skip
    acme_admin = {"X-API-Key": r.json()["api_key"]}
    ours, theirs = await mint(plane, tenant="acme"), await mint(plane, tenant="default")
    r = await client.post("/api/v1/credentials/revoke", json={"adapter": "billing"}, headers=acme_admin)
    assert r.json() == {"revoked": 1, "jtis": [ours.credential.jti]}
    assert (await introspect(client, theirs.token))["active"] is True


async def test_containing_an_adapter_revokes_its_live_credentials(served) -> None:
    plane, client = served
    admin = {"X-API-Key": ADMIN}
    billing, other = await mint(plane), await mint(plane, adapter="github", session="ses-9")
    r = await client.post("/api/v1/incidents/contain", json={"adapter": "billing", "reason": "exfil"},
                          headers=admin)  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json()["kind"] == "adapter" and r.json()["target"] == "billing"
    assert await introspect(client, billing.token) == {"active": False}
    assert (await introspect(client, other.token))["active"] is True
    lifted = await client.post(f"/api/v1/incidents/{r.json()['id']}/lift", headers=admin)
    assert lifted.status_code == 200
    # Lifting restores the adapter, not the revoked credential: the next execution mints anew.
    assert await introspect(client, billing.token) == {"active": False}
    assert (await introspect(client, (await mint(plane)).token))["active"] is True

"""Credentials minted per execution: short-lived EdDSA JWTs the target service can verify.

For an adapter whose catalog entry says `credential: {mint: true, audience, ttl}`, the broker
mints a fresh token for each execution, signed (Ed25519, alg `EdDSA`) with `joserfc` under a key
kept beside the server's other keys (`<keys dir>/credentials.key`, 0600, made on first start):

    header  {alg: EdDSA, typ: JWT, kid}
    claims  {iss, aud, sub: identity, act: adapter:<adapter>:<action>, sid: session, jti, iat, exp}

`exp - iat` is the adapter's TTL, 5 to 15 minutes (anything else is refused). Every issued
token is remembered by its `jti` (never the token itself), so it can be revoked before it
expires: by jti, by adapter (also on `incident contain --adapter`) or by session. Services
verify a token offline with the public keys at `GET /.well-known/jwks.json` (OKP keys), and
online with `POST /api/v1/credentials/introspect`, which answers RFC 7662's shape: `{active:
false}` for a bad signature, an unknown, expired or revoked token, and the claims when it is live.
Issue and revocation are audited and counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError, UnsupportedAlgorithmError
from joserfc.jwk import KeySet, OKPKey
from joserfc.jws import JWSRegistry

from gatehouse.crypto import load_or_create_signing_key
from gatehouse.domain.credentials import IssuedCredential
from gatehouse.domain.identity import Identity
from gatehouse.domain.ids import new_id
from gatehouse.errors import BadRequest
from gatehouse.metrics import Metrics
from gatehouse.store import Store

__all__ = ["ALGORITHM", "MAX_TTL", "MIN_TTL", "Credentials", "Minted", "check_ttl"]

ALGORITHM = "EdDSA"
MIN_TTL = 5 * 60
MAX_TTL = 15 * 60
MAX_TOKEN_CHARS = 8 * 1024


class _EdDSAOnly(JWSRegistry):
    """Signs and verifies `EdDSA` and nothing else (no `none`, no HMAC with the public key as
    its secret). RFC 9864 names the algorithm `Ed25519` and deprecates `EdDSA`, which joserfc
    warns about on every use; the contract, and most verifiers deployed today, speak `EdDSA`,
    which over an OKP Ed25519 key is the very same signature."""

    def get_alg(self, name: str) -> Any:
        if name != ALGORITHM:
            raise UnsupportedAlgorithmError(f"algorithm `{name}` is not accepted")
        return self.algorithms[name]


_REGISTRY = _EdDSAOnly(algorithms=[ALGORITHM])


def check_ttl(ttl: float) -> int:
    """A credential's lifetime in seconds: 5 to 15 minutes, else `BadRequest(invalid_ttl)`."""
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not MIN_TTL <= ttl <= MAX_TTL:
        raise BadRequest(
            f"a minted credential lives 5 to 15 minutes ({MIN_TTL}-{MAX_TTL} s), not `{ttl}`",
            code="invalid_ttl",
        )
    return int(ttl)


@dataclass(frozen=True, slots=True)
class Minted:
    token: str
    credential: IssuedCredential

    def __repr__(self) -> str:
        return f"Minted(jti={self.credential.jti!r})"  # the token stays out of logs


class Credentials:
    """Mint, introspect and revoke; the public keys as a JWKS."""

    def __init__(
        self,
        *,
        store: Store,
        metrics: Metrics,
        key_path: Path,
        issuer: str = "gatehouse",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.issuer = issuer
        self.clock = clock
        signing = load_or_create_signing_key(key_path)
        self.kid = signing.key_id
        params: Any = {"kid": self.kid, "use": "sig", "alg": ALGORITHM}
        self._private = OKPKey.import_key(signing.pem(), params)
        self._public = OKPKey.import_key(self._private.as_dict(private=False))
        self._verify = KeySet([self._public])

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self._public.as_dict(private=False)]}

    async def mint(
        self,
        *,
        tenant: str,
        adapter: str,
        action: str,
        session_id: str,
        identity_id: str,
        audience: str,
        ttl: float,
    ) -> Minted:
        """A fresh token for one execution, stored (by jti) and audited before it is handed out."""
        lifetime = check_ttl(ttl)
        iat = int(self.clock())
        c = IssuedCredential(
            jti=new_id("crd"),
            tenant=tenant,
            adapter=adapter,
            session_id=session_id,
            identity_id=identity_id,
            target=f"adapter:{adapter}:{action}",
            audience=audience,
            issued_at=float(iat),
            expires_at=float(iat + lifetime),
        )
        claims = {"iss": self.issuer, "aud": audience, "sub": identity_id, "act": c.target, "sid": session_id,
                  "jti": c.jti, "iat": iat, "exp": iat + lifetime}  # fmt: skip
        header = {"alg": ALGORITHM, "typ": "JWT", "kid": self.kid}
        token = jwt.encode(header, claims, self._private, registry=_REGISTRY)
        await self.store.add_credential(c)
        self.metrics.credentials_issued.labels(adapter).inc()
        return Minted(token=token, credential=c)

    async def introspect(self, token: Any) -> dict[str, Any]:
        """RFC 7662: `{active: false}` unless the token is ours, unaltered, known, unrevoked and
        unexpired; then its claims. Never says *why* a token is inactive (RFC 7662 section 2.2)."""
        inactive: dict[str, Any] = {"active": False}
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
            return inactive
        try:
            decoded = jwt.decode(token, self._verify, registry=_REGISTRY)
        except (JoseError, ValueError, TypeError, KeyError):
            return inactive
        claims = decoded.claims
        jti, exp = claims.get("jti"), claims.get("exp")
        if not isinstance(jti, str) or not isinstance(exp, int | float):
            return inactive
        row = await self.store.get_credential(jti)
        at = self.clock()
        if row is None or not row.live(at) or at >= exp:
            return inactive
        return {
            "active": True,
            "token_type": "Bearer",
            **{k: claims[k] for k in ("iss", "sub", "aud", "exp", "iat", "jti", "sid", "act") if k in claims},
        }

    async def revoke(
        self,
        who: Identity,
        tenant: str,
        *,
        jti: str | None = None,
        adapter: str | None = None,
        session_id: str | None = None,
    ) -> list[IssuedCredential]:
        """Revoke the live credentials matching one of `jti`, `adapter` or `session_id`: of
        `tenant` for a tenant's admin, of every tenant for a global admin."""
        given = [v for v in (jti, adapter, session_id) if v is not None]
        if len(given) != 1:
            raise BadRequest(
                "give exactly one of `jti`, `adapter` or `session_id`", code="invalid_revocation"
            )
        return await self.revoke_matching(
            tenant=None if who.is_global_admin else tenant, jti=jti, adapter=adapter, session_id=session_id
        )

    async def revoke_matching(
        self,
        *,
        tenant: str | None,
        jti: str | None = None,
        adapter: str | None = None,
        session_id: str | None = None,
    ) -> list[IssuedCredential]:
        revoked = await self.store.revoke_credentials(
            at=self.clock(), tenant=tenant, jti=jti, adapter=adapter, session_id=session_id
        )
        if revoked:
            self.metrics.credentials_revoked.inc(len(revoked))
        return revoked

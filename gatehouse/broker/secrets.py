"""Secrets the agent never holds: stored sealed, revealed only to the broker.

A secret is sealed with AES-GCM (`cryptography`) under one 256-bit key that never enters the
database: `$GATEHOUSE_SECRETS_KEY` (32 bytes, base64) or `<keys dir>/secrets.key` (created
0600 on first start). Each write draws a fresh random 96-bit nonce; the associated data binds
the tenant and the name, so a ciphertext copied into another row (another tenant, another
name) does not open. Whoever reads the database alone learns names and times, nothing else.

Routes show names and times only (`StoredSecret.to_public`); `reveal` is for the broker, which
injects the value into an outbound request and nowhere else. Setting and deleting are audited
by name. A value never appears in an answer, an error, a log line, an audit entry or a metric.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gatehouse.crypto import write_private
from gatehouse.domain.identity import Identity
from gatehouse.domain.ids import now
from gatehouse.domain.secrets import StoredSecret
from gatehouse.errors import BadRequest, GatehouseError, NotFound, PayloadTooLarge
from gatehouse.store import Store

__all__ = ["MAX_SECRET_BYTES", "SecretBox", "Secrets", "SecretsKeyError", "load_secrets_key"]

MAX_SECRET_BYTES = 64 * 1024
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_KEY_BYTES = 32
_NONCE_BYTES = 12
ENV_KEY = "GATEHOUSE_SECRETS_KEY"


class SecretsKeyError(GatehouseError):
    """The secrets key is missing, unreadable or not 32 bytes: the server does not start."""

    code = "bad_secrets_key"


def _decode_key(text: str, where: str) -> bytes:
    text = text.strip()
    try:
        # Standard or URL-safe alphabet, padded or not.
        std = text.replace("-", "+").replace("_", "/")
        raw = base64.b64decode(std + "=" * (-len(std) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise SecretsKeyError(f"{where} is not base64") from None
    if len(raw) != _KEY_BYTES:
        raise SecretsKeyError(f"{where} must hold {_KEY_BYTES} bytes (base64), not {len(raw)}")
    return raw


def load_secrets_key(path: Path, env_value: str | None = None) -> bytes:
    """The key from `env_value` (`$GATEHOUSE_SECRETS_KEY`) when given, else from `path`, which
    is created (0600, base64) on first start."""
    if env_value:
        return _decode_key(env_value, f"${ENV_KEY}")
    if path.exists():
        return _decode_key(path.read_text(encoding="ascii", errors="replace"), str(path))
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = AESGCM.generate_key(bit_length=256)
    write_private(path, base64.b64encode(key) + b"\n")
    return key


class SecretBox:
    """AES-GCM sealing bound to (tenant, name). Holds the key; never printed."""

    def __init__(self, key: bytes) -> None:
        if len(key) != _KEY_BYTES:
            raise SecretsKeyError(f"the secrets key must be {_KEY_BYTES} bytes")
        self._aead = AESGCM(key)

    @staticmethod
    def _aad(tenant: str, name: str) -> bytes:
        # Length-prefixed, so no (tenant, name) pair can spell another's associated data.
        t, n = tenant.encode(), name.encode()
        return b"gatehouse-secret:v1:" + len(t).to_bytes(2, "big") + t + len(n).to_bytes(2, "big") + n

    def seal(self, tenant: str, name: str, value: str) -> tuple[bytes, bytes]:
        nonce = os.urandom(_NONCE_BYTES)
        return nonce, self._aead.encrypt(nonce, value.encode("utf-8"), self._aad(tenant, name))

    def open(self, secret: StoredSecret) -> str:
        try:
            plain = self._aead.decrypt(secret.nonce, secret.ciphertext, self._aad(secret.tenant, secret.name))
        except (InvalidTag, ValueError):
            # A row moved, edited, or sealed under another key: say so, never guess.
            raise SecretsKeyError(
                f"secret `{secret.name}` of tenant `{secret.tenant}` does not open with this key "
                "(sealed under another key, or moved or altered in the database)",
                code="secret_unreadable",
            ) from None
        return plain.decode("utf-8")

    def __repr__(self) -> str:
        return "SecretBox(<key hidden>)"


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise BadRequest(
            "a secret name is 1 to 128 letters, digits, `_`, `.` or `-`, "
            "starting with a letter, digit or `_`",
            code="invalid_secret_name",
        )
    return name


class Secrets:
    """The secrets service: admins set, list and delete; the broker reveals."""

    def __init__(self, *, store: Store, box: SecretBox) -> None:
        self.store = store
        self._box = box

    async def put(self, who: Identity, tenant: str, name: str, value: str) -> tuple[StoredSecret, bool]:
        """Store `value` as the tenant's secret `name`; (stored, created)."""
        check_name(name)
        if not isinstance(value, str) or not value:
            raise BadRequest("a secret's `value` must be a non-empty string", code="invalid_value")
        if len(value.encode("utf-8")) > MAX_SECRET_BYTES:
            raise PayloadTooLarge(f"a secret holds at most {MAX_SECRET_BYTES} bytes", code="secret_too_large")
        nonce, ciphertext = self._box.seal(tenant, name, value)
        at = now()
        stored = await self.store.put_secret(
            StoredSecret(
                tenant=tenant,
                name=name,
                nonce=nonce,
                ciphertext=ciphertext,
                created_at=at,
                updated_at=at,
                created_by=who.id,
                updated_by=who.id,
            )
        )
        return stored, stored.created_at == at

    async def list(self, tenant: str) -> list[StoredSecret]:
        return await self.store.list_secrets(tenant)

    async def get(self, tenant: str, name: str) -> StoredSecret:
        found = await self.store.get_secret(tenant, check_name(name))
        if found is None:
            raise NotFound(f"no secret `{name}`", code="secret_not_found")
        return found

    async def delete(self, tenant: str, name: str) -> None:
        if not await self.store.delete_secret(tenant, check_name(name)):
            raise NotFound(f"no secret `{name}`", code="secret_not_found")

    async def reveal(self, tenant: str, name: str) -> str:
        """The value of the tenant's secret `name`, for the broker to inject into an outbound
        request. Nothing else calls this; nothing returns its answer to a caller."""
        return self._box.open(await self.get(tenant, name))

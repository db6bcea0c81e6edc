"""Ed25519 keys, signatures and canonical encoding, shared by bundles, approvals and audit.

A key id is the first 16 hex digits of the sha256 of the raw public key, so the same key has
the same id wherever it is loaded, and a verifier can pick the right key from several.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gatehouse.errors import GatehouseError

__all__ = [
    "KeyError_",
    "SigningKey",
    "VerifyKey",
    "b64d",
    "b64e",
    "canonical",
    "load_or_create_signing_key",
    "write_keypair",
    "write_private",
]


class KeyError_(GatehouseError):
    code = "bad_key"


def canonical(data: Any) -> bytes:
    """Canonical JSON bytes: sorted keys, no whitespace, UTF-8. What every signature covers.

    orjson writes the same bytes as `json.dumps(sort_keys=True, separators=(",", ":"),
    ensure_ascii=False)` for strings, integers, booleans and null, and for floats written
    without an exponent (tests/test_crypto.py); it is ten times faster, and every job, audit
    entry and approval is hashed on the request path. What orjson cannot encode (integers
    beyond 64 bits) takes the standard library's spelling: the same data, the same bytes.
    """
    try:
        return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class VerifyKey:
    public: Ed25519PublicKey
    key_id: str

    @classmethod
    def from_pem(cls, pem: bytes) -> VerifyKey:
        try:
            key = serialization.load_pem_public_key(pem)
        except ValueError as exc:
            raise KeyError_(f"not a PEM public key: {exc}") from None
        if not isinstance(key, Ed25519PublicKey):
            raise KeyError_("not an Ed25519 public key")
        return cls(public=key, key_id=_key_id(key))

    @classmethod
    def load(cls, path: str | Path) -> VerifyKey:
        return cls.from_pem(Path(path).read_bytes())

    def verify(self, data: bytes, signature: str) -> bool:
        try:
            self.public.verify(b64d(signature), data)
        except (InvalidSignature, ValueError):
            return False
        return True

    def pem(self) -> bytes:
        return self.public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


@dataclass(frozen=True)
class SigningKey:
    private: Ed25519PrivateKey
    key_id: str

    @classmethod
    def generate(cls) -> SigningKey:
        key = Ed25519PrivateKey.generate()
        return cls(private=key, key_id=_key_id(key.public_key()))

    @classmethod
    def from_pem(cls, pem: bytes) -> SigningKey:
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise KeyError_(f"not a PEM private key: {exc}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyError_("not an Ed25519 private key")
        return cls(private=key, key_id=_key_id(key.public_key()))

    @classmethod
    def load(cls, path: str | Path) -> SigningKey:
        return cls.from_pem(Path(path).read_bytes())

    @property
    def verify_key(self) -> VerifyKey:
        return VerifyKey(public=self.private.public_key(), key_id=self.key_id)

    def sign(self, data: bytes) -> str:
        return b64e(self.private.sign(data))

    def pem(self) -> bytes:
        return self.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def write_private(path: Path, data: bytes) -> None:
    # Created 0600 from the start: the key is never readable by others, not even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(path, 0o600)


def write_keypair(prefix: str | Path) -> SigningKey:
    """Write `PREFIX.key` (private, mode 0600) and `PREFIX.pub`; return the key."""
    key = SigningKey.generate()
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    write_private(Path(f"{prefix}.key"), key.pem())
    Path(f"{prefix}.pub").write_bytes(key.verify_key.pem())
    return key


def load_or_create_signing_key(path: Path) -> SigningKey:
    """The server's own key (approval tokens, audit checkpoints), made on first start."""
    if path.exists():
        return SigningKey.load(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = SigningKey.generate()
    write_private(path, key.pem())
    path.with_suffix(".pub").write_bytes(key.verify_key.pem())
    return key

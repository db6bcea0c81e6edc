"""Signed policy bundles: the envelope, signing, and verification with rollback protection.

Envelope (the body of `PUT /api/v1/policy`, what `gatehouse policy sign` writes):

    {"bundle": "<policy text>",
     "signature": {"key_id", "serial", "not_before", "expires_at", "sig",
                   "name", "bundle_sha256", "alg": "ed25519"}}

`sig` is Ed25519 over the canonical JSON of every other signature field, and `bundle_sha256`
binds the exact bundle bytes: changing one byte of the bundle, or any metadata field, breaks
it. `serial` must grow with each bundle, so an old, validly signed bundle cannot be replayed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from gatehouse.crypto import SigningKey, VerifyKey, canonical
from gatehouse.errors import BadRequest

__all__ = [
    "REFUSAL_REASONS",
    "BundleRefused",
    "parse_envelope",
    "sign_bundle",
    "verify_bundle",
]

_SIGNED_FIELDS = ("alg", "bundle_sha256", "expires_at", "key_id", "name", "not_before", "serial")
REFUSAL_REASONS = (
    "invalid_bundle",
    "unsigned",
    "malformed_signature",
    "unknown_key",
    "bad_signature",
    "expired",
    "not_yet_valid",
    "rollback",
)


class BundleRefused(BadRequest):
    """The kernel refused a bundle; the running one stays. `reason` is one of REFUSAL_REASONS."""

    code = "bundle_refused"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message, code=f"bundle_{reason}", details={"reason": reason})
        self.reason = reason


def _ts(value: float | None) -> str | None:
    if value is None:
        return None
    return datetime.fromtimestamp(value, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _parse_ts(value: Any, field: str) -> float | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BundleRefused("malformed_signature", f"signature `{field}` must be an RFC 3339 time")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BundleRefused("malformed_signature", f"signature `{field}` is not a time: `{value}`") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _payload(sig: Mapping[str, Any]) -> bytes:
    return canonical({k: sig.get(k) for k in _SIGNED_FIELDS})


def sign_bundle(
    text: str,
    key: SigningKey,
    *,
    name: str,
    serial: int,
    now: float,
    expires_in: int | None = None,
    not_before: float | None = None,
) -> dict[str, Any]:
    """The envelope for `text`, signed by `key`."""
    sig: dict[str, Any] = {
        "alg": "ed25519",
        "bundle_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "expires_at": _ts(now + expires_in) if expires_in else None,
        "key_id": key.key_id,
        "name": name,
        "not_before": _ts(not_before if not_before is not None else now),
        "serial": serial,
    }
    sig["sig"] = key.sign(_payload(sig))
    return {"bundle": text, "signature": sig}


def parse_envelope(data: Any) -> tuple[str, dict[str, Any] | None]:
    """(bundle text, signature or None) from an envelope dict."""
    if not isinstance(data, Mapping) or not isinstance(data.get("bundle"), str):
        raise BadRequest("a signed bundle is `{bundle: <text>, signature: {...}}`", code="invalid_bundle")
    signature = data.get("signature")
    if signature is not None and not isinstance(signature, Mapping):
        raise BundleRefused("malformed_signature", "`signature` must be an object")
    return data["bundle"], dict(signature) if signature is not None else None


def verify_bundle(
    text: str,
    signature: Mapping[str, Any] | None,
    trusted: Mapping[str, VerifyKey],
    *,
    now: float,
    running_serial: int | None,
    name: str | None = None,
) -> int:
    """Check `signature` over `text`; return its serial or raise `BundleRefused`."""
    if signature is None:
        raise BundleRefused("unsigned", "the bundle is not signed and trusted keys are configured")
    sig = signature.get("sig")
    key_id = signature.get("key_id")
    serial = signature.get("serial")
    if not isinstance(sig, str) or not isinstance(key_id, str):
        raise BundleRefused("malformed_signature", "the signature needs `sig` and `key_id`")
    if not isinstance(serial, int) or isinstance(serial, bool) or serial < 0:
        raise BundleRefused("malformed_signature", "the signature needs a non-negative integer `serial`")
    key = trusted.get(key_id)
    if key is None:
        raise BundleRefused("unknown_key", f"key `{key_id}` is not a trusted bundle key")
    if not key.verify(_payload(signature), sig):
        raise BundleRefused("bad_signature", "the bundle signature does not verify")
    if signature.get("bundle_sha256") != hashlib.sha256(text.encode("utf-8")).hexdigest():
        raise BundleRefused("bad_signature", "the bundle does not match the bytes that were signed")
    if name is not None and signature.get("name") not in (None, name):
        raise BundleRefused("bad_signature", f"the signature is for bundle `{signature.get('name')}`")
    not_before = _parse_ts(signature.get("not_before"), "not_before")
    expires_at = _parse_ts(signature.get("expires_at"), "expires_at")
    if expires_at is not None and now >= expires_at:
        raise BundleRefused("expired", f"the bundle expired at {signature.get('expires_at')}")
    if not_before is not None and now < not_before - 60:  # a minute of clock skew
        raise BundleRefused("not_yet_valid", f"the bundle is not valid before {signature.get('not_before')}")
    if running_serial is not None and serial <= running_serial:
        raise BundleRefused(
            "rollback",
            f"serial {serial} is not newer than the running bundle's serial {running_serial}",
        )
    return serial

"""Bundle signatures: every refusal reason, and the envelope the CLI writes."""

from __future__ import annotations

import time

import pytest

from gatehouse.crypto import SigningKey
from gatehouse.kernel.bundles import BundleRefused, sign_bundle, verify_bundle

TEXT = "version: 1\nname: b\nrules: []\n"


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.generate()


def _verify(
    env: dict,
    key: SigningKey,
    *,
    running: int | None = None,
    text: str | None = None,
    now: float | None = None,
) -> int:
    return verify_bundle(
        text if text is not None else env["bundle"],
        env["signature"],
        {key.key_id: key.verify_key},
        now=now or time.time(),
        running_serial=running,
        name="b",
    )


def test_valid_bundle_verifies(key: SigningKey) -> None:
    env = sign_bundle(TEXT, key, name="b", serial=3, now=time.time(), expires_in=3600)
    assert _verify(env, key, running=2) == 3
    assert set(env["signature"]) >= {"key_id", "serial", "not_before", "expires_at", "sig"}


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda env: env.__setitem__("bundle", env["bundle"] + "# x\n"), "bad_signature"),
        (lambda env: env["signature"].__setitem__("serial", 99), "bad_signature"),
        (lambda env: env["signature"].__setitem__("expires_at", None), "bad_signature"),
        (lambda env: env["signature"].__setitem__("sig", "AAAA"), "bad_signature"),
        (lambda env: env["signature"].__setitem__("key_id", "0000000000000000"), "unknown_key"),
        (lambda env: env["signature"].pop("sig"), "malformed_signature"),
        (lambda env: env["signature"].__setitem__("serial", "7"), "malformed_signature"),
    ],
)
def test_tampering_is_refused(key: SigningKey, mutate, reason: str) -> None:
    env = sign_bundle(TEXT, key, name="b", serial=3, now=time.time(), expires_in=3600)
    mutate(env)
    with pytest.raises(BundleRefused) as err:
        _verify(env, key)
    assert err.value.reason == reason


def test_expired_and_not_yet_valid(key: SigningKey) -> None:
    old = sign_bundle(TEXT, key, name="b", serial=1, now=time.time() - 7200, expires_in=3600)
    with pytest.raises(BundleRefused) as err:
        _verify(old, key)
    assert err.value.reason == "expired"
    future = sign_bundle(TEXT, key, name="b", serial=1, now=time.time(), not_before=time.time() + 3600)
    with pytest.raises(BundleRefused) as err:
        _verify(future, key)
    assert err.value.reason == "not_yet_valid"


def test_rollback_is_refused(key: SigningKey) -> None:
    env = sign_bundle(TEXT, key, name="b", serial=5, now=time.time())
    for running in (5, 6):
        with pytest.raises(BundleRefused) as err:
            _verify(env, key, running=running)
        assert err.value.reason == "rollback"


def test_unsigned_is_refused_when_keys_are_trusted(key: SigningKey) -> None:
    with pytest.raises(BundleRefused) as err:
        verify_bundle(TEXT, None, {key.key_id: key.verify_key}, now=time.time(), running_serial=None)
    assert err.value.reason == "unsigned"

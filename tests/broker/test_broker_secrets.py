"""Sealing secrets: AES-GCM bound to tenant and name, a fresh nonce per write, the key outside
the database (a file made 0600 on first start, or `$GATEHOUSE_SECRETS_KEY`)."""

from __future__ import annotations

import base64
import dataclasses
import stat
from pathlib import Path

import pytest

from gatehouse.broker.secrets import SecretBox, Secrets, SecretsKeyError, load_secrets_key
from gatehouse.domain.identity import Identity
from gatehouse.errors import BadRequest, NotFound, PayloadTooLarge
from gatehouse.store.memory import MemoryStore

pytestmark = pytest.mark.anyio
ADMIN = Identity(id="idn-admin", name="admin", tenant="t1", roles=("admin",), topics=("**",),
                 capabilities=("*",), created_at=0.0)  # fmt: skip


def test_the_key_file_is_made_once_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "secrets.key"
    key = load_secrets_key(path)
    assert len(key) == 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_secrets_key(path) == key


def test_the_environment_key_wins_and_a_bad_one_is_refused(tmp_path: Path) -> None:
    raw = bytes(range(32))
    path = tmp_path / "secrets.key"
    assert load_secrets_key(path, base64.b64encode(raw).decode()) == raw
    assert load_secrets_key(path, base64.urlsafe_b64encode(raw).decode().rstrip("=")) == raw
    assert not path.exists()  # no file when the environment holds the key
    for bad in ("not base64!", base64.b64encode(b"short").decode()):
        with pytest.raises(SecretsKeyError):
            load_secrets_key(path, bad)


async def test_a_ciphertext_opens_only_in_its_own_row_and_under_its_key() -> None:
    store = MemoryStore()
    await store.open()
    box = SecretBox(bytes(32))
    secrets = Secrets(store=store, box=box)
    await secrets.put(ADMIN, "t1", "token", "value-of-t1")
    await secrets.put(ADMIN, "t2", "token", "value-of-t2")
    stored = await store.get_secret("t1", "token")
    assert stored is not None and b"value-of-t1" not in stored.ciphertext
    assert await secrets.reveal("t1", "token") == "value-of-t1"
    # Moved to another tenant's row or renamed: the associated data no longer matches.
    for moved in (dataclasses.replace(stored, tenant="t2"), dataclasses.replace(stored, name="other")):
        with pytest.raises(SecretsKeyError) as caught:
            box.open(moved)
        assert caught.value.code == "secret_unreadable"
    with pytest.raises(SecretsKeyError):
        SecretBox(bytes([1]) * 32).open(stored)
    # Each write draws a fresh nonce: the same value twice seals differently.
    again, _ = await secrets.put(ADMIN, "t1", "token", "value-of-t1")
    assert again.nonce != stored.nonce and again.ciphertext != stored.ciphertext
    assert "value-of-t1" not in repr(again) and "key" not in repr(box).replace("<key hidden>", "")


async def test_names_and_values_are_checked() -> None:
    store = MemoryStore()
    await store.open()
    secrets = Secrets(store=store, box=SecretBox(bytes(32)))
    for name in ("", "../etc", "a/b", "x" * 129, "-lead", "spa ce", "new\nline"):
        with pytest.raises(BadRequest) as caught:
            await secrets.put(ADMIN, "t1", name, "v")
        assert caught.value.code == "invalid_secret_name"
    with pytest.raises(BadRequest):
        await secrets.put(ADMIN, "t1", "ok", "")
    with pytest.raises(PayloadTooLarge):
        await secrets.put(ADMIN, "t1", "ok", "x" * (64 * 1024 + 1))
    with pytest.raises(NotFound):
        await secrets.reveal("t1", "missing")
    created = await secrets.put(ADMIN, "t1", "ok.name-1_x", "v")
    replaced = await secrets.put(ADMIN, "t1", "ok.name-1_x", "w")
    assert (created[1], replaced[1]) == (True, False)

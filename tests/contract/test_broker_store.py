"""The broker's store concerns on every backend: sealed secrets per tenant, minted credentials
revoked once, by jti, adapter or session, and an audit entry for each change that names what
changed and never carries a value."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from gatehouse.domain.credentials import IssuedCredential
from gatehouse.domain.secrets import StoredSecret
from gatehouse.errors import Conflict
from gatehouse.store.base import Store

pytestmark = pytest.mark.anyio

T0 = 1_000.0


def secret(
    name: str, *, tenant: str = "t1", at: float = T0, by: str = "idn-admin", value: bytes = b"ct"
) -> StoredSecret:
    return StoredSecret(tenant=tenant, name=name, nonce=b"n" * 12, ciphertext=value, created_at=at,
                        updated_at=at, created_by=by, updated_by=by)  # fmt: skip


def credential(jti: str, *, tenant: str = "t1", adapter: str = "billing", session: str = "ses-1",
               exp: float = T0 + 600) -> IssuedCredential:  # fmt: skip
    return IssuedCredential(jti=jti, tenant=tenant, adapter=adapter, session_id=session, identity_id="idn-a",
                            target=f"adapter:{adapter}:refund", audience=adapter, issued_at=T0,
                            expires_at=exp)  # fmt: skip


async def audit_types(store: Store, stream: str) -> list[tuple[str, dict]]:
    return [(e.type, e.data) for e in await store.audit_entries(stream)]


async def test_a_secret_is_created_replaced_listed_and_deleted_per_tenant(store: Store) -> None:
    first = await store.put_secret(secret("github_token", value=b"one"))
    assert first.created_at == first.updated_at == T0
    again = await store.put_secret(secret("github_token", at=T0 + 5, by="idn-other", value=b"two"))
    # A replacement keeps when and by whom it was created.
    assert (again.created_at, again.updated_at, again.created_by, again.updated_by) == (
        T0, T0 + 5, "idn-admin", "idn-other"
    )  # fmt: skip
    assert (await store.get_secret("t1", "github_token")).ciphertext == b"two"  # type: ignore[union-attr]
    await store.put_secret(secret("a_first"))
    await store.put_secret(secret("github_token", tenant="t2", value=b"theirs"))
    assert [s.name for s in await store.list_secrets("t1")] == ["a_first", "github_token"]
    assert [s.name for s in await store.list_secrets("t2")] == ["github_token"]
    assert await store.get_secret("t3", "github_token") is None
    assert await store.delete_secret("t1", "github_token") is True
    assert await store.delete_secret("t1", "github_token") is False
    assert await store.get_secret("t1", "github_token") is None
    assert (await store.get_secret("t2", "github_token")).ciphertext == b"theirs"  # type: ignore[union-attr]
    entries = await audit_types(store, "tenant:t1")
    assert entries == [
        ("secret.set", {"name": "github_token", "created": True}),
        ("secret.set", {"name": "github_token", "created": False}),
        ("secret.set", {"name": "a_first", "created": True}),
        ("secret.deleted", {"name": "github_token"}),
    ]


async def test_a_ciphertext_is_kept_byte_for_byte(store: Store) -> None:
    raw = bytes(range(256))
    await store.put_secret(secret("blob", value=raw))
    assert (await store.get_secret("t1", "blob")).ciphertext == raw  # type: ignore[union-attr]


async def test_a_credential_is_stored_once_and_audited_without_a_token(store: Store) -> None:
    c = credential("jti-1")
    await store.add_credential(c)
    with pytest.raises(Conflict) as dup:
        await store.add_credential(c)
    assert dup.value.code == "duplicate_credential"
    assert await store.get_credential("jti-1") == c
    assert await store.get_credential("jti-none") is None
    [(kind, data)] = await audit_types(store, "tenant:t1")
    assert kind == "credential.issued" and data["jti"] == "jti-1" and data["adapter"] == "billing"
    assert "token" not in data


async def test_revocation_by_jti_adapter_session_and_tenant(store: Store) -> None:
    for c in [
        credential("a1"),
        credential("a2", session="ses-2"),
        credential("b1", adapter="github"),
        credential("x1", tenant="t2"),
        credential("old", exp=T0 + 1),  # expired by the time of the revocations
    ]:
        await store.add_credential(c)
    at = T0 + 10
    assert [c.jti for c in await store.revoke_credentials(at=at, tenant="t1", jti="a1")] == ["a1"]
    assert await store.revoke_credentials(at=at, tenant="t1", jti="a1") == []  # once
    assert await store.revoke_credentials(at=at, tenant="t1", jti="x1") == []  # another tenant's
    assert await store.revoke_credentials(at=at, tenant="t1", jti="old") == []  # expired: nothing to do
    by_session = await store.revoke_credentials(at=at, tenant="t1", session_id="ses-2")
    assert [(c.jti, c.revoked_at) for c in by_session] == [("a2", at)]
    # An adapter across every tenant (containment), only live ones.
    await store.add_credential(credential("b2", adapter="github", tenant="t2"))
    by_adapter = await store.revoke_credentials(at=at, tenant=None, adapter="github")
    assert sorted(c.jti for c in by_adapter) == ["b1", "b2"]
    assert (await store.get_credential("b2")).revoked_at == at  # type: ignore[union-attr]
    assert (await store.get_credential("x1")).revoked_at is None  # type: ignore[union-attr]
    revoked = [d for t, d in await audit_types(store, "tenant:t1") if t == "credential.revoked"]
    assert [(d["jtis"], d.get("adapter"), d.get("session_id")) for d in revoked] == [
        (["a1"], None, None), (["a2"], None, "ses-2"), (["b1"], "github", None)
    ]  # fmt: skip


async def test_concurrent_revocations_revoke_each_credential_once(store: Store) -> None:
    for n in range(5):
        await store.add_credential(credential(f"c{n}"))
    results = await asyncio.gather(
        *(store.revoke_credentials(at=T0 + 1, tenant=None, adapter="billing") for _ in range(4))
    )
    assert sorted(c.jti for r in results for c in r) == [f"c{n}" for n in range(5)]
    assert dataclasses.replace(credential("c0"), revoked_at=T0 + 1) == await store.get_credential("c0")

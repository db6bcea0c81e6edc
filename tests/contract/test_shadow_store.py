"""The shadow concern on every store backend: one shadow bundle at most (replaced, removed), and
its disagreements newest first, filtered by shadow snapshot and tenant, bounded by `limit`;
(SQLite) both survive a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatehouse.crypto import SigningKey
from gatehouse.domain.shadow import Disagreement
from gatehouse.store.base import PolicyRow, Store
from gatehouse.store.sqlite import SQLiteStore

pytestmark = pytest.mark.anyio


def row(snapshot: str, serial: int | None = None) -> PolicyRow:
    signature = {"serial": serial} if serial else None
    return PolicyRow(snapshot=snapshot, text=f"name: {snapshot}\n", signature=signature,
                     installed_at=10.0, installed_by="idn_admin", serial=serial)  # fmt: skip


def disagreement(i: int, shadow: str = "s1", tenant: str = "default") -> Disagreement:
    return Disagreement(decision_id=f"dec_{i}", timestamp=float(i), stage="submit", tenant=tenant,
                        subject="job.deploy.apply", live_snapshot="l1", live_decision="allow",
                        live_rule_id="default", shadow_snapshot=shadow, shadow_decision="deny",
                        shadow_rule_id="deny-deploys", shadow_reason="no deploys on Friday")  # fmt: skip


async def test_one_shadow_bundle_replaced_and_removed(store: Store) -> None:
    assert await store.shadow_policy() is None
    await store.set_shadow_policy(row("s1"))
    await store.set_shadow_policy(row("s2", serial=3))
    got = await store.shadow_policy()
    assert got is not None and (got.snapshot, got.serial, got.signature) == ("s2", 3, {"serial": 3})
    assert got.text == "name: s2\n" and got.installed_by == "idn_admin"
    await store.set_shadow_policy(None)
    assert await store.shadow_policy() is None
    # The live bundle's history is another concern: untouched.
    assert await store.policy_history() == []


async def test_disagreements_newest_first_filtered_and_limited(store: Store) -> None:
    for i in range(5):
        await store.add_disagreements([disagreement(i)])
    await store.add_disagreements([disagreement(5, shadow="s2"), disagreement(6, tenant="acme")])
    assert [d.decision_id for d in await store.disagreements(shadow_snapshot="s1", limit=3)] == [
        "dec_6",
        "dec_4",
        "dec_3",
    ]
    assert [d.decision_id for d in await store.disagreements(shadow_snapshot="s1", tenant="acme")] == [
        "dec_6"
    ]
    assert [d.decision_id for d in await store.disagreements(shadow_snapshot="s2")] == ["dec_5"]
    assert len(await store.disagreements()) == 7
    assert (await store.disagreements(limit=1))[0] == disagreement(6, tenant="acme")


async def test_sqlite_shadow_survives_a_restart(tmp_path: Path, audit_key: SigningKey) -> None:
    path = tmp_path / "g.db"
    first = SQLiteStore(path=path, audit_key=audit_key)
    await first.open()
    await first.set_shadow_policy(row("s1"))
    await first.add_disagreements([disagreement(1)])
    await first.close()
    again = SQLiteStore(path=path, audit_key=audit_key)
    await again.open()
    try:
        got = await again.shadow_policy()
        assert got is not None and got.snapshot == "s1"
        assert await again.disagreements(shadow_snapshot="s1") == [disagreement(1)]
    finally:
        await again.close()

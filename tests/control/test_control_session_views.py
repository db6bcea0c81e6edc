"""A session view follows its session: its history items are always what converting its steps
afresh would give, however the steps arrived (this process, another replica, results reported)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatehouse.control.session_views import SessionViews
from gatehouse.control.steps import history_of
from gatehouse.domain.sessions import Session, SessionStep

pytestmark = pytest.mark.anyio


class _Steps:
    """The one store call a view makes, over a list of steps stamped with revisions."""

    def __init__(self) -> None:
        self.steps: dict[str, SessionStep] = {}
        self.revision = 0
        self.asked: list[int] = []

    def put(self, step_id: str, **changes: object) -> None:
        self.revision += 1
        old = self.steps.get(step_id)
        base = old or SessionStep(
            session_id="s1", step_id=step_id, adapter="web", action="read", params={},
            step_hash="h", decision_id=f"d-{step_id}", result="allow", rule_id="r", created_at=0.0,
        )  # fmt: skip
        self.steps[step_id] = replace(base, rev=self.revision, **changes)  # type: ignore[arg-type]

    async def session_steps(self, session_id: str, since: int = 0) -> list[SessionStep]:
        self.asked.append(since)
        return [s for s in self.steps.values() if s.rev > since]

    def session(self) -> Session:
        return Session(id="s1", tenant="t", identity_id="i", task="report", created_at=0.0,
                       revision=self.revision)  # fmt: skip


async def test_history_follows_new_and_changed_steps() -> None:
    store = _Steps()
    views = SessionViews(store, bound=1 << 20)  # type: ignore[arg-type]
    script = [
        [("a", {})],
        [("b", {"result": "deny"}), ("c", {})],
        [("a", {"status": "succeeded", "output": "untrusted text"})],  # a result, in place
        [],
        [("d", {"adapter": "mail", "action": "send"}), ("c", {"status": "succeeded", "trusted": True})],
        [("b", {"status": "failed"}), ("e", {})],
    ]
    for batch in script:
        for step_id, changes in batch:
            store.put(step_id, **changes)
        view = await views.view(store.session())
        assert [h.target for h in view.history] == [s.target for s in store.steps.values()]
        assert view.history == history_of(list(store.steps.values()))
    assert store.asked[-1] > 0  # advanced from its revision, not read whole again
    assert view.history[0].output == "untrusted text"
    assert view.history[1].decision == "deny" and view.history[1].output == ""


async def test_a_rebuilt_view_keeps_its_history() -> None:
    store = _Steps()
    views = SessionViews(store, bound=1 << 20)  # type: ignore[arg-type]
    store.put("a", status="succeeded", output="first")
    store.put("b")
    await views.view(store.session())
    # A kept output that changes afterwards forces a rebuild of the view.
    store.put("a", output="changed")
    view = await views.view(store.session())
    assert view.history == history_of(list(store.steps.values()))
    assert view.history[0].output == "changed"


async def test_facts_are_kept_per_view_and_catalog() -> None:
    from gatehouse.domain.steps import session_facts
    from gatehouse.policy.catalog import EMPTY_CATALOG, Catalog

    store = _Steps()
    views = SessionViews(store, bound=1 << 20)  # type: ignore[arg-type]
    store.put("a", status="succeeded", output="text")
    store.put("b", result="deny")
    view = await views.view(store.session())
    facts = view.facts(EMPTY_CATALOG)
    assert facts == session_facts(view.history, EMPTY_CATALOG)
    assert facts == {"untrusted_read": True, "step_count": 2, "denied_count": 1,
                     "allowed_targets": ["adapter:web:read"]}  # fmt: skip
    assert view.facts(EMPTY_CATALOG) is facts  # computed once
    assert view.facts(Catalog()) is not facts  # a new bundle's catalog: computed again
    store.put("c", adapter="mail", action="send")
    later = await views.view(store.session())
    assert later.facts(EMPTY_CATALOG)["allowed_targets"] == ["adapter:web:read", "adapter:mail:send"]


async def test_own_writes_are_taken_in_without_a_read_and_others_are_read() -> None:
    store = _Steps()
    views = SessionViews(store, bound=1 << 20)  # type: ignore[arg-type]
    store.put("a")
    await views.view(store.session())
    asked = len(store.asked)
    # This process decides b, then reports a's result: each at the revision after the view's.
    store.put("b")
    views.absorb(store.session(), store.steps["b"])
    store.put("a", status="succeeded", output="untrusted text")
    views.absorb(store.session(), store.steps["a"])
    view = await views.view(store.session())
    assert len(store.asked) == asked  # nothing read
    assert view.history == history_of(list(store.steps.values()))
    assert view.provenance is not None and view.provenance.size == len("untrusted text")
    assert views.allowed("s1", "a") is store.steps["a"]
    # Another writer came between: the own write is not taken in, the next view reads both.
    store.put("c")
    store.put("d")
    views.absorb(store.session(), store.steps["d"])
    view = await views.view(store.session())
    assert len(store.asked) == asked + 1
    assert [h.target for h in view.history] == ["adapter:web:read"] * 4
    store.put("e", result="deny")
    assert views.allowed("s1", "e") is None  # not in the view; and a deny is never served from it


_CHANGES = st.sampled_from(
    [
        {},
        {"result": "deny"},
        {"result": "require_approval"},
        {"result": "allow"},
        {"adapter": "mail", "action": "send"},
        {"status": "succeeded", "output": "untrusted text"},
        {"status": "succeeded", "output": "trusted text", "trusted": True},
        {"status": "failed"},
    ]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.tuples(st.sampled_from("abcdef"), _CHANGES), max_size=4), max_size=12))
def test_facts_carried_from_view_to_view_are_the_facts_of_the_history(script: list[list[Any]]) -> None:
    # Each view's facts are advanced from the last one's (`advance_facts`), or counted afresh when
    # that cannot be done; either way they are what counting the whole history gives.
    from gatehouse.domain.steps import session_facts
    from gatehouse.policy.catalog import EMPTY_CATALOG

    async def run() -> None:
        store = _Steps()
        views = SessionViews(store, bound=1 << 20)  # type: ignore[arg-type]
        for batch in script:
            for step_id, changes in batch:
                old = store.steps.get(step_id)
                if old is not None and old.output is not None and "output" in changes:
                    continue  # a kept output never changes (that rebuilds the view: tested above)
                store.put(step_id, **changes)
            view = await views.view(store.session())
            assert view.facts(EMPTY_CATALOG) == session_facts(view.history, EMPTY_CATALOG)

    asyncio.run(run())


def test_facts_are_advanced_not_counted_again(monkeypatch: pytest.MonkeyPatch) -> None:
    # A session of n steps: the facts are counted once, then advanced (O(1) per step, not O(n)).
    import gatehouse.control.session_views as module
    from gatehouse.domain.steps import session_facts
    from gatehouse.policy.catalog import EMPTY_CATALOG

    counted: list[int] = []

    def counting(*args: Any) -> Any:
        counted.append(len(args[0]))
        return session_facts(*args)

    monkeypatch.setattr(module, "session_facts", counting)

    async def run() -> None:
        store = _Steps()
        views = SessionViews(store, bound=1 << 20)  # type: ignore[arg-type]
        for n in range(50):
            store.put(f"s{n}", result="deny" if n % 3 else "allow")
            (await views.view(store.session())).facts(EMPTY_CATALOG)
            store.put(f"s{n}", status="succeeded", output=f"out {n}")
            (await views.view(store.session())).facts(EMPTY_CATALOG)

    asyncio.run(run())
    assert counted == [1]  # the first view counts its one step; the next 99 views advance

"""What the step gate knows of a session between two of its steps: its steps and provenance.

Each step is judged on its session's history (earlier steps, their decisions and results) and on
the provenance index of the untrusted outputs kept so far. Reading every step back and indexing
every output again on every step would make a step cost grow with its session (a thousand steps,
megabytes of kept output). So the gate holds a view per session, stamped with the session
revision it reflects, and on the next step asks the store only for the steps changed after that
revision (`session_steps(since=...)`): usually none or one, whoever wrote them (this process, or
another replica on a shared store). Outputs are indexed once, when first seen.

The views are a cache: bounded in sessions and in kept characters, least recently used first
out, and never the authority (a view that cannot be brought up to date is rebuilt from the store).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from gatehouse.domain.sessions import Session, SessionStep
from gatehouse.domain.step_replay import history_step
from gatehouse.domain.steps import HistoryStep, advance_facts, session_facts
from gatehouse.policy import ALLOW, Provenance
from gatehouse.policy.catalog import Catalog
from gatehouse.store.base import SessionStore

__all__ = ["SessionView", "SessionViews", "history_step"]


def _kept(step: SessionStep) -> bool:
    """A step whose output belongs in provenance (`provenance_of`'s rule)."""
    return step.result == ALLOW and not step.trusted and step.output is not None


@dataclass(slots=True)
class SessionView:
    revision: int
    steps: dict[str, SessionStep] = field(default_factory=dict)  # by step id, oldest first
    provenance: Provenance | None = None  # None when the session is bounded (see `provenance`)
    # `steps` as history items, in the same order, converted once per step and change rather than
    # once per step per later step (a session of n steps would otherwise cost O(n) per decision);
    # `items` holds them by step id.
    history: tuple[HistoryStep, ...] = ()
    items: dict[str, HistoryStep] = field(default_factory=dict)
    # The facts are carried from view to view (`advance_facts`), not counted again per step.
    _facts: tuple[Catalog, dict[str, Any]] | None = None

    def ordered(self) -> list[SessionStep]:
        return list(self.steps.values())

    def facts(self, catalog: Catalog) -> dict[str, Any]:
        """`session_facts` of this history under `catalog`, computed once per view and catalog
        (a policy install brings a new catalog object)."""
        if self._facts is None or self._facts[0] is not catalog:
            self._facts = (catalog, session_facts(self.history, catalog))
        return self._facts[1]


class SessionViews:
    def __init__(
        self, store: SessionStore, *, bound: int, sessions: int = 4096, chars: int = 64 << 20
    ) -> None:
        self.store = store
        self.bound = bound
        self.max_sessions = sessions
        self.max_chars = chars
        self._views: OrderedDict[str, SessionView] = OrderedDict()
        self._chars = 0

    async def view(self, session: Session) -> SessionView:
        """`session`'s steps and provenance as of at least `session.revision`."""
        view = self._views.get(session.id)
        if view is None:
            view = self._fresh(session)
        # A view ahead of the row just read (a step another request took meanwhile) is used as
        # it is: more history, never less.
        if view.revision < session.revision:
            changed = await self.store.session_steps(session.id, since=view.revision)
            view = self._advance(session, view, changed)
        self._keep(session.id, view)
        return view

    def absorb(self, session: Session, step: SessionStep) -> None:
        """Take in a step this process just stored or changed (its result) at revision
        `step.rev`, when the session's view is at the revision just before it: the next step
        then needs no read. Otherwise (another writer came between, or no view is held) the
        next `view` reads what changed."""
        view = self._views.get(session.id)
        if view is None or view.revision != step.rev - 1:
            return
        self._keep(session.id, self._advance(session, view, [step]))

    def allowed(self, session_id: str, step_id: str) -> SessionStep | None:
        """The view's copy of an allowed step (a decision that never changes once made), if held."""
        view = self._views.get(session_id)
        step = view.steps.get(step_id) if view is not None else None
        return step if step is not None and step.result == ALLOW else None

    def _fresh(self, session: Session) -> SessionView:
        prov = None if session.bounded else Provenance.start(trusted=[session.task] if session.task else [],
                                                            bound=self.bound)  # fmt: skip
        return SessionView(revision=0, provenance=prov)

    def _advance(self, session: Session, view: SessionView, changed: list[SessionStep]) -> SessionView:
        steps = dict(view.steps)
        items = dict(view.items)
        prov = view.provenance
        facts = view._facts
        for step in changed:
            before = steps.get(step.step_id)
            if before is not None and _kept(before):
                # A kept output never changes once reported; if it did, index everything again.
                return self._rebuilt(session, view, changed)
            steps[step.step_id] = step
            item = history_step(step)
            if facts is not None:
                advanced = advance_facts(facts[1], facts[0], items.get(step.step_id), item)
                facts = None if advanced is None else (facts[0], advanced)
            items[step.step_id] = item  # a changed step keeps its place; a new one goes last
            if prov is not None and _kept(step):
                prov = prov.with_untrusted(step.output)
        revision = max([view.revision, *(s.rev for s in changed)])
        if session.bounded:
            prov = None
        return SessionView(revision=revision, steps=steps, provenance=prov,
                           history=tuple(items.values()), items=items, _facts=facts)  # fmt: skip

    def _rebuilt(self, session: Session, view: SessionView, changed: list[SessionStep]) -> SessionView:
        steps = dict(view.steps)
        steps.update((s.step_id, s) for s in changed)
        prov = self._fresh(session).provenance
        if prov is not None:
            for s in steps.values():
                if _kept(s):
                    prov = prov.with_untrusted(s.output)
        items = {sid: history_step(s) for sid, s in steps.items()}
        return SessionView(
            revision=max([view.revision, *(s.rev for s in changed)]),
            steps=steps,
            provenance=prov,
            history=tuple(items.values()),
            items=items,
        )

    def _keep(self, session_id: str, view: SessionView) -> None:
        old = self._views.pop(session_id, None)
        if old is not None:
            if old.revision > view.revision:
                view = old  # two requests advanced the same view; the later state stays
            self._chars -= _size(old)
        self._views[session_id] = view
        self._chars += _size(view)
        while self._views and (len(self._views) > self.max_sessions or self._chars > self.max_chars):
            _, dropped = self._views.popitem(last=False)
            self._chars -= _size(dropped)

    def forget(self, session_id: str) -> None:
        old = self._views.pop(session_id, None)
        if old is not None:
            self._chars -= _size(old)


def _size(view: SessionView) -> int:
    return view.provenance.size if view.provenance is not None else 0

"""The in-process bus: handlers run as tasks on the same event loop."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from gatehouse.bus.base import Bus, Handler, Subscription

__all__ = ["MemoryBus"]

log = logging.getLogger("gatehouse.bus")


class _MemorySubscription(Subscription):
    __slots__ = ("_bus", "_handler", "_subject")

    def __init__(self, bus: MemoryBus, subject: str, handler: Handler) -> None:
        self._bus = bus
        self._subject = subject
        self._handler = handler

    async def unsubscribe(self) -> None:
        self._bus._remove(self._subject, self._handler)


class MemoryBus(Bus):
    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    async def open(self) -> None:
        self._closed = False

    async def close(self) -> None:
        self._closed = True
        self._handlers.clear()
        for task in list(self._tasks):
            task.cancel()
        self._tasks.clear()

    async def publish(self, subject: str, data: dict[str, Any]) -> None:
        if self._closed:
            return  # notifications are best effort: the store has the truth
        for handler in self._handlers.get(subject, ()):
            task = asyncio.create_task(self._run(handler, subject, data))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def subscribe(self, subject: str, handler: Handler) -> Subscription:
        self._handlers.setdefault(subject, []).append(handler)
        return _MemorySubscription(self, subject, handler)

    def _remove(self, subject: str, handler: Handler) -> None:
        handlers = self._handlers.get(subject, [])
        if handler in handlers:
            handlers.remove(handler)

    @staticmethod
    async def _run(handler: Handler, subject: str, data: dict[str, Any]) -> None:
        try:
            await handler(data)
        except Exception:  # a broken subscriber must not break the publisher
            log.exception("bus handler for %s failed", subject)

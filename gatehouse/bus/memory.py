"""The in-process bus: handlers run as tasks on the same event loop."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from gatehouse.bus.base import Bus, Handler

__all__ = ["MemoryBus"]

log = logging.getLogger("gatehouse.bus")


class MemoryBus(Bus):
    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self._tasks.clear()

    async def publish(self, subject: str, data: dict[str, Any]) -> None:
        for handler in self._handlers.get(subject, ()):
            task = asyncio.create_task(self._run(handler, subject, data))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def subscribe(self, subject: str, handler: Handler) -> None:
        self._handlers.setdefault(subject, []).append(handler)

    @staticmethod
    async def _run(handler: Handler, subject: str, data: dict[str, Any]) -> None:
        try:
            await handler(data)
        except Exception:  # a broken subscriber must not break the publisher
            log.exception("bus handler for %s failed", subject)

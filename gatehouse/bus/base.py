"""The bus interface: fire-and-forget notifications between parts of the control plane.

Subjects in use: `jobs.queued` (wake up lessees), `policy.changed` (reload the kernel),
`identity.revoked` (drop cached credentials). The store stays the source of truth: a lost
notification delays work by at most one poll interval, it never loses a job.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["Bus", "Handler"]

Handler = Callable[[dict[str, Any]], Awaitable[None]]


class Bus(ABC):
    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def publish(self, subject: str, data: dict[str, Any]) -> None: ...

    @abstractmethod
    def subscribe(self, subject: str, handler: Handler) -> None: ...

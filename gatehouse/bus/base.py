"""The bus interface: fire-and-forget notifications between parts of the control plane.

The subjects in use are named in `gatehouse.bus.subjects`. The store stays the source of truth:
a lost notification delays work by at most one poll interval, it never loses a job. So the
contract is small (`tests/contract/test_bus.py` runs it on every driver):

- `subscribe` is a coroutine (a network driver registers with its server) and returns a
  `Subscription`; every subscriber of a subject gets every message published on it after it
  subscribed, as a dict equal to the one published;
- a handler runs apart from the publisher: a slow or failing handler never blocks or fails
  `publish`;
- after `Subscription.unsubscribe` the handler gets nothing more; after `close` no handler gets
  anything, and `publish` drops what it is given.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["Bus", "Handler", "Subscription"]

Handler = Callable[[dict[str, Any]], Awaitable[None]]


class Subscription(ABC):
    @abstractmethod
    async def unsubscribe(self) -> None:
        """Stop delivering to this handler (idempotent)."""


class Bus(ABC):
    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def publish(self, subject: str, data: dict[str, Any]) -> None: ...

    @abstractmethod
    async def subscribe(self, subject: str, handler: Handler) -> Subscription: ...

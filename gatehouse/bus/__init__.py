"""Notifications behind one interface: in-process (default); NATS JetStream for scale-out."""

from __future__ import annotations

from gatehouse.bus.base import Bus, Handler
from gatehouse.bus.memory import MemoryBus

__all__ = ["Bus", "Handler", "MemoryBus"]

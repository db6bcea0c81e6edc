"""Notifications behind one interface: in-process (default); NATS JetStream for scale-out."""

from __future__ import annotations

from gatehouse.bus.base import Bus, Handler, Subscription
from gatehouse.bus.memory import MemoryBus
from gatehouse.bus.subjects import IDENTITY_REVOKED, JOBS_QUEUED, POLICY_CHANGED

__all__ = ["IDENTITY_REVOKED", "JOBS_QUEUED", "POLICY_CHANGED", "Bus", "Handler", "MemoryBus", "Subscription"]

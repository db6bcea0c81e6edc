"""What every control service is built from, as one typed value."""

from __future__ import annotations

from dataclasses import dataclass

from gatehouse.bus import Bus
from gatehouse.config import Settings
from gatehouse.kernel import Kernel
from gatehouse.metrics import Metrics
from gatehouse.store import Store

__all__ = ["Deps"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Deps:
    """The shared resources of one control plane. The plane builds it once and passes it to each
    service (keyword-only, beside the few services that service needs), so adding a resource is
    one field here, not an edit of every constructor."""

    store: Store
    bus: Bus
    kernel: Kernel
    metrics: Metrics
    settings: Settings

"""The safety kernel: the running policy, its snapshot, the decision cache, the fail mode; signed
bundles and last-known-good (`bundles`); optionally in its own process (`remote`)."""

from __future__ import annotations

from gatehouse.domain.records import Verdict
from gatehouse.kernel.kernel import KERNEL_UNAVAILABLE, Kernel

__all__ = ["KERNEL_UNAVAILABLE", "Kernel", "Verdict"]

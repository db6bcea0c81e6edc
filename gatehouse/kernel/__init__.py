"""The safety kernel: policy snapshot, fail mode (and, later, signed bundles and the cache)."""

from __future__ import annotations

from gatehouse.kernel.kernel import KERNEL_UNAVAILABLE, Kernel, Verdict

__all__ = ["KERNEL_UNAVAILABLE", "Kernel", "Verdict"]

"""Gatehouse: the safety kernel and control plane between AI agents and production."""

from __future__ import annotations

from gatehouse.errors import GatehouseError

__all__ = ["GatehouseError", "__version__"]
__version__ = "0.1.0"

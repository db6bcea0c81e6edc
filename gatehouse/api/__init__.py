"""The HTTP edge: FastAPI app, authentication, error mapping."""

from __future__ import annotations

__all__: list[str] = []

"""Every router reads its bodies through `StrictJSONRoute` (JSON whatever the Content-Type)."""

from __future__ import annotations

import importlib
import pkgutil

import pytest
from fastapi.routing import APIRoute, APIRouter

import gatehouse.api.routes
from gatehouse.api.body import StrictJSONRoute

MODULES = [m.name for m in pkgutil.iter_modules(gatehouse.api.routes.__path__) if not m.name.startswith("_")]


@pytest.mark.parametrize("name", MODULES)
def test_every_router_uses_the_strict_json_route(name: str) -> None:
    router = getattr(importlib.import_module(f"gatehouse.api.routes.{name}"), "router", None)
    assert isinstance(router, APIRouter), f"gatehouse.api.routes.{name} has no `router`"
    # A router created without `route_class=StrictJSONRoute` parses a form body as bytes (422).
    assert router.route_class is StrictJSONRoute
    routes = [r for r in router.routes if isinstance(r, APIRoute)]
    assert routes and all(isinstance(r, StrictJSONRoute) for r in routes)

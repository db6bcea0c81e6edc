"""The route index picks, for every request, the route a linear scan of the route list picks."""

from __future__ import annotations

import re
from typing import Any

import pytest
from starlette.routing import BaseRoute, Match, Route

from gatehouse.api.app import create_app
from gatehouse.api.routing import RouteIndex
from gatehouse.config import Settings

METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")


def _scope(method: str, path: str) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}


def _linear(routes: list[BaseRoute], scope: dict[str, Any]) -> BaseRoute | None:
    for route in routes:
        if route.matches(scope)[0] == Match.FULL:
            return route
    return None


def _chosen(routes: list[BaseRoute], scope: dict[str, Any]) -> BaseRoute | None:
    """What the app's router runs: the first full match, the index's pick when it is first."""
    for route in routes:
        match, child = route.matches(scope)
        if match == Match.FULL:
            picked: BaseRoute = child["gatehouse.route"] if isinstance(route, RouteIndex) else route
            return picked
    return None


@pytest.fixture(scope="module")
def routes() -> list[BaseRoute]:
    return create_app(Settings()).router.routes


def test_the_index_sits_first_and_covers_the_api(routes: list[BaseRoute]) -> None:
    index = routes[0]
    assert isinstance(index, RouteIndex)
    assert "/api/v1/steps" in index.buckets and "/api/v1/jobs" in index.buckets


def test_every_route_and_method_resolves_as_a_linear_scan_would(routes: list[BaseRoute]) -> None:
    plain = routes[1:]
    paths = {re.sub(r"\{[^}]+\}", "x1", r.path) for r in plain if isinstance(r, Route)}
    paths |= {"/api/v1/nope", "/api/v1/steps/evaluate/", "/ui/approvals/x1", "/", "/api"}
    checked = 0
    for path in sorted(paths):
        for method in METHODS:
            scope = _scope(method, path)
            assert _chosen(routes, scope) is _linear(plain, scope), (method, path)
            checked += 1
    assert checked > 100


def test_an_earlier_unkeyed_route_still_wins() -> None:
    async def endpoint(request: Any) -> None:  # pragma: no cover - never called
        return None

    catch_all = Route("/api/{rest:path}", endpoint, methods=["GET"])
    specific = Route("/api/v1/things", endpoint, methods=["GET"])
    routes: list[BaseRoute] = [catch_all, specific]
    routes.insert(0, RouteIndex(list(routes)))
    assert _chosen(routes, _scope("GET", "/api/v1/things")) is catch_all

"""A lookup in front of the app's route list, so a request does not try every route in turn.

Starlette matches a request by asking each route in order; with some fifty routes that is about
90 us of regex and scope work before the handler runs (measured on FastAPI 0.165), more than a
step decision costs. `RouteIndex` sits first in the route list and answers from a dict keyed by
the path's first three segments (`/api/v1/steps`): only the routes that can match that prefix are
asked, in their original order. Routes whose first three segments hold a parameter (or mounts)
cannot be keyed; they are asked too when they come earlier in the list than the route found, so
the first full match is the one a linear scan would pick. Anything else (no full match: a wrong
method, an unknown path, a redirect for a trailing slash) falls through to the linear scan
unchanged, with its usual 404/405 answers.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Match, Route
from starlette.types import Receive, Scope, Send

__all__ = ["RouteIndex", "install_route_index"]

_DEPTH = 3


def _route_path(scope: Scope) -> str:
    # What Starlette's routes match against: the path below the app's root path.
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _key(path: str) -> str | None:
    """`/api/v1/steps` for `/api/v1/steps/evaluate`; None when a parameter is in the way."""
    parts = path.split("/", _DEPTH + 1)[: _DEPTH + 1]
    key = "/".join(parts)
    return None if "{" in key else key


class RouteIndex(BaseRoute):
    def __init__(self, routes: list[BaseRoute]) -> None:
        self.buckets: dict[str, list[tuple[int, BaseRoute]]] = {}
        self.unkeyed: list[tuple[int, BaseRoute]] = []
        for position, route in enumerate(routes):
            path = getattr(route, "path", None)
            key = _key(path) if isinstance(path, str) and isinstance(route, Route) else None
            if key is None:
                self.unkeyed.append((position, route))
            else:
                self.buckets.setdefault(key, []).append((position, route))

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http":
            return Match.NONE, {}
        bucket = self.buckets.get(_key(_route_path(scope)) or "")
        if not bucket:
            return Match.NONE, {}
        for position, route in bucket:
            match, child = route.matches(scope)
            if match == Match.FULL:
                for earlier, other in self.unkeyed:
                    if earlier > position:
                        break
                    if other.matches(scope)[0] == Match.FULL:
                        return Match.NONE, {}  # let the linear scan pick it
                return Match.FULL, {**child, "gatehouse.route": route}
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await scope["gatehouse.route"].handle(scope, receive, send)


def install_route_index(routes: list[BaseRoute]) -> None:
    """Put a `RouteIndex` over `routes` (an app's route list, complete) at its front."""
    routes[:] = [r for r in routes if not isinstance(r, RouteIndex)]
    routes.insert(0, RouteIndex(list(routes)))

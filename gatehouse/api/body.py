"""Request bodies: one strict, fast JSON parser for every route.

Starlette parses JSON with the standard library, which accepts what JSON forbids: lone UTF-16
surrogates (`"\\ud800"`), which no UTF-8 store or response can hold (they used to reach the
store and fail there as a 500), and `NaN`/`Infinity`. orjson refuses both. Its decode error is a
`json.JSONDecodeError`, so FastAPI still answers it as a validation error, mapped to 400
`invalid_json` in `errors.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

__all__ = ["StrictJSONRequest", "StrictJSONRoute"]


class StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = orjson.loads(await self.body())
        return self._json


class StrictJSONRoute(APIRoute):
    """An `APIRoute` whose handlers see a `StrictJSONRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict

"""Request bodies: one strict, fast JSON parser for every route, and a lean path for submit.

Starlette parses JSON with the standard library, which accepts what JSON forbids: lone UTF-16
surrogates (`"\\ud800"`), which no UTF-8 store or response can hold (they used to reach the
store and fail there as a 500), and `NaN`/`Infinity`. orjson refuses both. Its decode error is a
`json.JSONDecodeError`, so FastAPI still answers it as a validation error, mapped to 400
`invalid_json` in `errors.py`.

Every body is JSON whatever its `Content-Type` says (DESIGN.md section 5): curl's `-d` sends
`application/x-www-form-urlencoded`, and FastAPI would hand such a body to the model as raw bytes
("Input should be a valid dictionary"). FastAPI picks its parser from the `Content-Type` header
alone, so a `StrictJSONRequest` shows it `application/json`: the body then goes through the
strict parser below, and one that is not JSON is a 400 `invalid_json`. Every router under
`gatehouse.api.routes` uses `StrictJSONRoute` (a test walks them).

`parse(request, Model)` is the submit route's body: parsed once and validated once, without
FastAPI's per-request content-type parsing and dependency machinery (DESIGN.md section 8), with
errors raised exactly as FastAPI raises them, so they are answered the same way. (pydantic's own
JSON parser would accept `NaN`, so the bytes go through the same strict parser as elsewhere.) The route keeps
its OpenAPI entry through `openapi_body(Model)`.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import orjson
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response

__all__ = ["StrictJSONRequest", "StrictJSONRoute", "openapi_body", "parse"]

M = TypeVar("M", bound=BaseModel)


async def parse(request: Request, model: type[M]) -> M:
    """The request body validated as `model`; a `RequestValidationError` when it is not."""
    raw = await request.body()
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error", "input": {}}]
        ) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        raise RequestValidationError([{**e, "loc": ("body", *e.get("loc", ()))} for e in errors]) from None


def openapi_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` documenting `model` as the JSON body of a route that calls `parse`.

    The schema is added to the components by `gatehouse.api.app` (see `extra_schemas`).
    """
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


_JSON_CONTENT_TYPE = (b"content-type", b"application/json")


class StrictJSONRequest(Request):
    """A request whose body is JSON, parsed strictly, whatever its `Content-Type` says."""

    @property
    def headers(self) -> Headers:
        # FastAPI reads the body as JSON only for a JSON content type and passes anything else
        # on as bytes; the caller's header is replaced in this view only (the scope is untouched).
        if not hasattr(self, "_headers"):
            raw = [(k, v) for k, v in self.scope["headers"] if k != b"content-type"]
            self._headers = Headers(raw=[*raw, _JSON_CONTENT_TYPE])
        return self._headers

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

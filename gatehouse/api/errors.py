"""Errors -> HTTP. The only place that knows status codes.

Body: `{"error": {"code": "snake_case", "message": "...", "details": {...}}}`.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from gatehouse.errors import (
    BadRequest,
    Conflict,
    Denied,
    Forbidden,
    GatehouseError,
    NotFound,
    PayloadTooLarge,
    PolicyError,
    RateLimited,
    Unauthorized,
    Unavailable,
    Upstream,
    UpstreamTimeout,
)

__all__ = ["error_response", "install_error_handlers", "json_response"]

log = logging.getLogger("gatehouse.api")

_STATUS: list[tuple[type[GatehouseError], int]] = [
    (PolicyError, 422),
    (BadRequest, 422),
    (Unauthorized, 401),
    (Denied, 403),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (PayloadTooLarge, 413),
    (RateLimited, 429),
    (UpstreamTimeout, 504),
    (Upstream, 502),
    (Unavailable, 503),
]
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = orjson.dumps(data, default=str, option=orjson.OPT_NON_STR_KEYS)
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    *,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {"error": {"code": code, "message": message, "details": details or {}}}
    if extra:
        body.update(extra)
    return json_response(body, status, headers)


def status_for(exc: GatehouseError) -> int:
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 400


def _location(loc: Any) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def _not_json_message(error: dict[str, Any]) -> str:
    # Said plainly because the usual cause is a client that sent a form or plain text (curl -d
    # without a JSON body): the Content-Type does not matter, the body must be JSON. The
    # position, not the text: the body may hold a secret.
    loc = error.get("loc", ())
    where = f" (at character {loc[1]})" if len(loc) > 1 and isinstance(loc[1], int) else ""
    return f"the request body must be JSON, whatever its Content-Type says; this one is not valid JSON{where}"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(GatehouseError)
    async def _gatehouse(request: Request, exc: GatehouseError) -> Response:
        status = status_for(exc)
        metrics = getattr(request.app.state, "metrics", None)
        if metrics is not None:
            metrics.http_errors.labels(exc.code).inc()
        headers = None
        if isinstance(exc, RateLimited):
            headers = {"Retry-After": str(max(1, int(exc.retry_after + 0.999)))}
        extra: dict[str, Any] | None = None
        if isinstance(exc, Denied):
            # The decision also sits at the top level, beside `error`, for clients that read it
            # the way they read a 201.
            extra = {
                k: exc.details[k] for k in ("decision", "job_id", "status", "derived") if k in exc.details
            }
        return error_response(status, exc.code, exc.message, exc.details, extra=extra, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        bad_json = next((e for e in errors if e.get("type") == "json_invalid"), None)
        if bad_json is not None:
            return error_response(400, "invalid_json", _not_json_message(bad_json))
        first = errors[0] if errors else {}
        where = _location(first.get("loc", ()))
        field = where.split(".")[0]
        code = f"invalid_{field}" if field and field != "body" else "invalid_request"
        if first.get("type") in ("model_attributes_type", "dict_type") and where == "body":
            code = "invalid_request"
        message = f"{where}: {first.get('msg', 'invalid value')}"
        # Where, what rule and why, never pydantic's `input` or `ctx`: the rejected value may be a
        # secret sent in the wrong field, and error bodies end up in logs and tickets.
        details = {
            "errors": [
                {"loc": _location(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
                for e in errors[:20]
            ]
        }
        return error_response(422, code, message, details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        if exc.status_code == 404:
            code = "route_not_found"
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        # Never a stack trace to the caller; the log has it.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "internal error; see the server log")

"""The FastAPI application: routes, error mapping, body limit, lifespan."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from starlette.responses import Response
from starlette.routing import Route

from gatehouse import __version__, ui
from gatehouse.api.apidocs import install_api_docs
from gatehouse.api.auth import Principal, authenticate
from gatehouse.api.body import StrictJSONRoute
from gatehouse.api.errors import install_error_handlers, json_response
from gatehouse.api.limits import BodyLimit, HealthOnly, RequestId
from gatehouse.api.openapi import install_openapi
from gatehouse.api.ratelimit import RateLimiter, parse_limit
from gatehouse.api.routes import (
    adapters,
    approvals,
    audit,
    credentials,
    decisions,
    identities,
    incidents,
    jobs,
    mcp,
    policy,
    quarantine,
    secrets,
    steps,
    worker,
)
from gatehouse.api.routing import install_route_index
from gatehouse.api.schemas import AdapterCallIn, JobIn, StepIn, StepResultIn
from gatehouse.config import Settings
from gatehouse.control.plane import ControlPlane
from gatehouse.domain.steps import catalog_of
from gatehouse.errors import GatehouseError
from gatehouse.mcp.gateway import Gateway
from gatehouse.sandbox import Sandboxes

__all__ = ["create_app", "mount"]


def create_app(settings: Settings, plane: ControlPlane | None = None) -> FastAPI:
    plane = plane or ControlPlane(settings)
    gateway = Gateway(
        store=plane.store,
        kernel=plane.kernel,
        metrics=plane.metrics,
        auth=plane.auth,
        steps=plane.step_gate,
        reveal=plane.secrets.reveal,
        contained=plane.incidents.adapter,
        sandboxes=Sandboxes(bwrap=settings.sandbox_bwrap, forbidden=settings.sandbox_forbidden),
        mint=plane.credentials.mint,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            await plane.start()
        except GatehouseError as exc:
            # The database or the bus is down, or the schema is newer than this code: one clear
            # line, and the process exits non-zero (uvicorn's startup failure).
            print(f"gatehouse: cannot start: {exc.message}", file=sys.stderr)
            await plane.stop()
            raise
        try:
            async with gateway.run():
                yield
        finally:
            await plane.stop()

    app = FastAPI(title="Gatehouse", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    # Routes declared on the app itself read bodies the way every router does (api/body.py).
    app.router.route_class = StrictJSONRoute
    app.state.plane = plane
    app.state.store = plane.store
    app.state.metrics = plane.metrics
    app.state.settings = settings
    app.state.gateway = gateway
    app.state.limiter = RateLimiter(
        identity=parse_limit(settings.rate_limit_identity),
        tenant=parse_limit(settings.rate_limit_tenant),
        on_limited=lambda scope: plane.metrics.rate_limited.labels(scope).inc(),
    )
    install_error_handlers(app)
    # The hot routes (submit, and the step routes every tool call passes), served first as plain
    # Starlette routes: the same endpoints without FastAPI's per-request dependency resolution
    # and handler layers (each reads its own body and headers; see `jobs.submit_job`). The
    # FastAPI routes below are shadowed but document them in the OpenAPI.
    lean = (
        ("/api/v1/jobs", jobs.submit_job, JobIn),
        ("/api/v1/steps/evaluate", steps.evaluate_step, StepIn),
        ("/api/v1/steps/result", steps.step_result, StepResultIn),
        ("/api/v1/adapters/{adapter}/{action}", adapters.call_adapter_lean, AdapterCallIn),
    )
    for path, endpoint, _body in lean:
        app.router.routes.append(Route(path, endpoint, methods=["POST"], include_in_schema=False))
    # The MCP gateway (streamable HTTP): an ASGI app of its own, not a FastAPI route.
    app.router.routes.append(
        Route("/mcp/{adapter}", _Asgi(gateway), methods=["GET", "POST", "DELETE"], include_in_schema=False)
    )
    for module in (
        jobs,
        policy,
        identities,
        worker,
        audit,
        approvals,
        quarantine,
        incidents,
        decisions,
        steps,
        mcp,
        adapters,
        secrets,
        credentials,
    ):
        mount(app, module.router)
    mount(app, ui.router)

    _document_lean_bodies(app, *(body for _path, _endpoint, body in lean))
    # Each lean endpoint authenticates and applies the rate limits itself (no declared
    # dependency for the OpenAPI to read them from).
    install_openapi(app, limited_without_depends={f"POST {path}" for path, _endpoint, _body in lean})
    install_api_docs(app)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> Response:
        return json_response({"status": "ok"})

    @app.get("/readyz", tags=["health"])
    async def readyz(request: Request) -> Response:
        snapshot = plane.kernel.snapshot
        if snapshot is None:
            return json_response({"status": "no_policy", "policy_snapshot": None}, 503)
        # Not ready while an out-of-process kernel cannot answer: every decision would take the
        # fail mode. A ping with its own deadline, beside the decisions, not in front of them.
        unavailable = await plane.kernel.probe()
        if unavailable is not None:
            body = {"status": "kernel_unavailable", "reason": unavailable, "policy_snapshot": snapshot}
            return json_response(body, 503)
        # Not ready while the database or the bus does not answer (a replica in front of a load
        # balancer is taken out until they are back; nothing to restart).
        backend = await plane.health()
        if backend is not None:
            body = {"status": "backend_unavailable", "reason": backend, "policy_snapshot": snapshot}
            return json_response(body, 503)
        # Not ready while an adapter's sandbox cannot be set up (no bubblewrap, no namespaces, a
        # declared path that is missing or shows the data directory): it fails closed, and says so.
        unsandboxed = _sandbox_problems(gateway, plane.kernel.policy)
        if unsandboxed:
            reason = "; ".join(f"{name}: {why}" for name, why in unsandboxed.items())
            return json_response(
                {"status": "sandbox_unavailable", "reason": reason, "adapters": unsandboxed,
                 "policy_snapshot": snapshot}, 503,
            )  # fmt: skip
        return json_response({"status": "ready", "policy_snapshot": snapshot})

    @app.get("/metrics", tags=["health"])
    async def metrics() -> Response:
        return Response(generate_latest(plane.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/api/v1/whoami", tags=["identities"])
    async def whoami(who: Annotated[Principal, Depends(authenticate)]) -> Response:
        return json_response({**who.identity.to_public(), "acting_tenant": who.tenant})

    install_route_index(app.router.routes)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    if not settings.serves_api:
        app.add_middleware(HealthOnly, role=settings.role)
    app.add_middleware(RequestId)
    return app


def _sandbox_problems(gateway: Gateway, policy: Any) -> dict[str, str]:
    """adapter -> why its sandbox cannot be set up, for every stdio MCP adapter of the bundle."""
    out: dict[str, str] = {}
    for adapter in catalog_of(policy).adapters.values():
        runtime = gateway.runtime(adapter)
        if runtime is not None and runtime["status"] != "available":
            out[adapter.name] = str(runtime.get("reason", "unavailable"))
    return out


class _Asgi:
    """An ASGI app for a `Route` (a plain function would be wrapped as a request handler)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.gateway.asgi(scope, receive, send)


def mount(app: FastAPI, router: APIRouter) -> None:
    """Serve `router`'s routes from the app's own route list, in order.

    `app.include_router` keeps an included router as one lazy node that FastAPI (0.16x) walks
    on every request, about 150 us before the handler runs even for the last of a dozen
    routers: more than a step decision costs. Our routers carry their prefix, tags and route
    class themselves, so their `APIRoute`s are complete and can be served as they are.
    """
    app.router.routes.extend(router.routes)
    app.openapi_schema = None


def _document_lean_bodies(app: FastAPI, *models: type[BaseModel]) -> None:
    """Add the schemas of bodies parsed by `api.body.parse` (not by FastAPI) to the OpenAPI."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in models:
                body = model.model_json_schema(ref_template="#/components/schemas/{model}")
                for name, sub in body.pop("$defs", {}).items():
                    components.setdefault(name, sub)
                components[model.__name__] = body
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

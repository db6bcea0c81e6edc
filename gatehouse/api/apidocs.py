"""`/docs` (Swagger UI) and `/redoc` (ReDoc), served from packaged assets: they work offline.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so on a host without Internet access
(where a safety kernel often runs) they are blank. The `fastapi-offline` package ships the
built files (Swagger UI: Apache-2.0; ReDoc: MIT; the package: MIT); they are read once at
startup and served from `/docs/assets/`.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.responses import Response

from gatehouse.errors import NotFound

__all__ = ["ASSETS", "install_api_docs"]

_MEDIA = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}


def _load() -> dict[str, bytes]:
    files = resources.files("fastapi_offline").joinpath("static")
    return {name: files.joinpath(name).read_bytes() for name in _MEDIA}


ASSETS = _load()
_PREFIX = "/docs/assets"


def install_api_docs(app: FastAPI) -> None:
    """Serve the two pages and their assets (the app is created with `docs_url=None`)."""
    router = APIRouter(include_in_schema=False)
    openapi_url = app.openapi_url or "/openapi.json"

    @router.get("/docs")
    async def swagger() -> Response:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            swagger_js_url=f"{_PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{_PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{_PREFIX}/favicon.png",
            swagger_ui_parameters={"persistAuthorization": False, "displayRequestDuration": True},
        )

    @router.get("/redoc")
    async def redoc() -> Response:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            redoc_js_url=f"{_PREFIX}/redoc.standalone.js",
            redoc_favicon_url=f"{_PREFIX}/favicon.png",
            with_google_fonts=False,
        )

    @router.get(_PREFIX + "/{name}")
    async def asset(name: str) -> Response:
        body = ASSETS.get(name)
        if body is None:
            raise NotFound(f"no documentation asset `{name}`", code="route_not_found")
        return Response(body, media_type=_MEDIA[name], headers={"Cache-Control": "public, max-age=86400"})

    @router.get("/favicon.ico")
    async def favicon() -> Response:
        return Response(ASSETS["favicon.png"], media_type="image/png")

    app.router.routes.extend(router.routes)

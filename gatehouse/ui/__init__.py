"""The approval page, served at `/ui/`: one static HTML page, its script and its stylesheet.

The page is a small vanilla-JS front end over the public API. The approver's key lives in the
tab's `sessionStorage` and travels only as the `X-API-Key` header on `fetch` calls: no cookie
ever authenticates a request, so a forged cross-site request carries no credentials (CSRF-safe
by construction), and no key is ever put in a URL. The strict Content-Security-Policy below
allows only these three same-origin files: no inline script or style, no framing, no form
submission (the sign-in form is handled by the script and never navigates).
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from starlette.responses import RedirectResponse, Response

__all__ = ["CONTENT_SECURITY_POLICY", "SECURITY_HEADERS", "router"]

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "frame-ancestors 'none'; form-action 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


def _read(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


# Read once at import: the request path only hands out bytes already in memory.
_INDEX = _read("index.html")
_SCRIPT = _read("app.js")
_STYLE = _read("app.css")

router = APIRouter(prefix="/ui", tags=["ui"], include_in_schema=False)


def _static(body: bytes, media_type: str) -> Response:
    return Response(body, media_type=media_type, headers=SECURITY_HEADERS)


@router.get("")
async def ui_root() -> Response:
    return RedirectResponse("/ui/", status_code=307, headers=SECURITY_HEADERS)


@router.get("/")
async def ui_index() -> Response:
    return _static(_INDEX, "text/html; charset=utf-8")


@router.get("/app.js")
async def ui_script() -> Response:
    return _static(_SCRIPT, "text/javascript; charset=utf-8")


@router.get("/app.css")
async def ui_style() -> Response:
    return _static(_STYLE, "text/css; charset=utf-8")

"""A target service for the broker's tests: a small ASGI app under uvicorn on a free loopback
port, in a thread of the test process. It counts the TCP connections made to it (so a test can
show that a refused call never reached it), checks the secret the broker injects, and verifies
minted tokens the way a real service would: offline against Gatehouse's JWKS, then online with
its introspection route."""

from __future__ import annotations

import asyncio
import threading
import time
import warnings
from typing import Any

import httpx
import uvicorn
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol

MiB = 1024 * 1024
_EDDSA = JWSRegistry(algorithms=["EdDSA"])


class Target:
    def __init__(self, *, secret: str, audience: str = "billing") -> None:
        self.secret = secret
        self.audience = audience
        self.gatehouse = ""  # set once the Gatehouse under test runs
        self.connections = 0
        self.requests: list[dict[str, Any]] = []
        self.tokens: list[str] = []
        self.clock_skew = 0.0  # seconds the target's clock runs ahead (a token presented late)
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # the app ------------------------------------------------------------------------------

    def _seen(self, request: Request) -> None:
        self.requests.append({"method": request.method, "raw_path": request.scope["raw_path"].decode(),
                              "query": request.scope["query_string"].decode(),
                              "headers": dict(request.headers)})  # fmt: skip

    def _authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.secret}"

    async def issues(self, request: Request) -> Response:
        self._seen(request)
        if not self._authorized(request):
            return JSONResponse({"error": "bad credential"}, 401)
        p = request.path_params
        return JSONResponse({"owner": p["owner"], "repo": p["repo"], "issues": [{"id": 1, "title": "a bug"}],
                             "query": request.scope["query_string"].decode()})  # fmt: skip

    async def item(self, request: Request) -> Response:
        self._seen(request)
        return JSONResponse({"raw_path": request.scope["raw_path"].decode()})

    async def create(self, request: Request) -> Response:
        self._seen(request)
        if not self._authorized(request):
            return JSONResponse({"error": "bad credential"}, 401)
        return JSONResponse({"created": await request.json()}, 201)

    async def echo(self, request: Request) -> Response:
        # A careless upstream that echoes the request (its Authorization header too) back,
        # in JSON, with the value escaped, and as plain text.
        self._seen(request)
        auth = request.headers.get("authorization", "")
        if request.query_params.get("as") == "text":
            return PlainTextResponse(f"you sent: {auth}")
        escaped = "".join(f"\\u{ord(c):04x}" for c in auth)
        body = '{"headers": {"authorization": "' + auth + '"}, "escaped": "' + escaped + '"}'
        return Response(body, media_type="application/json")

    async def fail(self, request: Request) -> Response:
        self._seen(request)
        auth = request.headers.get("authorization", "")
        return JSONResponse({"error": f"upstream exploded while handling {auth}"}, 500)

    async def big(self, request: Request) -> Response:
        self._seen(request)

        async def chunks() -> Any:
            for _ in range(50):
                yield b"x" * MiB

        return StreamingResponse(chunks(), media_type="application/octet-stream")

    async def redirect(self, request: Request) -> Response:
        self._seen(request)
        return RedirectResponse(request.query_params["to"], 302)

    async def slow(self, request: Request) -> Response:
        self._seen(request)
        await asyncio.sleep(5)
        return JSONResponse({"late": True})

    async def whoami(self, request: Request) -> Response:
        """A service taking minted tokens: signature and audience against the JWKS, expiry on
        its own clock, then introspection (revoked or unknown tokens are inactive)."""
        self._seen(request)
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return JSONResponse({"error": "no token"}, 401)
        token = auth[len("Bearer ") :]
        self.tokens.append(token)
        return await self.check_token(token)

    async def check_token(self, token: str) -> Response:
        async with httpx.AsyncClient(base_url=self.gatehouse, timeout=10) as c:
            keys = KeySet.import_key_set((await c.get("/.well-known/jwks.json")).json())
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # joserfc's note that RFC 9864 renames EdDSA
                    claims = jwt.decode(token, keys, registry=_EDDSA).claims
            except (JoseError, ValueError):
                return JSONResponse({"error": "bad signature"}, 401)
            if claims.get("aud") != self.audience:
                return JSONResponse({"error": "wrong audience"}, 401)
            if time.time() + self.clock_skew >= claims["exp"]:
                return JSONResponse({"error": "expired"}, 401)
            state = (await c.post("/api/v1/credentials/introspect", json={"token": token})).json()
        if not state.get("active"):
            return JSONResponse({"error": "inactive"}, 401)
        return JSONResponse({k: claims[k] for k in ("sub", "act", "sid", "aud", "jti", "iat", "exp")})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/repos/{owner}/{repo}/issues", self.issues),
                Route("/items/{id}", self.item),
                Route("/items", self.create, methods=["POST"]),
                Route("/echo", self.echo),
                Route("/fail", self.fail),
                Route("/big", self.big),
                Route("/redirect", self.redirect),
                Route("/slow", self.slow),
                Route("/whoami", self.whoami),
            ]
        )

    # running ------------------------------------------------------------------------------

    def start(self, port: int) -> Target:
        target = self

        class Counting(H11Protocol):
            def connection_made(self, transport: Any) -> None:
                target.connections += 1
                super().connection_made(transport)

        self.port = port
        config = uvicorn.Config(self.app(), host="127.0.0.1", port=port, http=Counting, log_level="warning",
                                lifespan="off", access_log=False)  # fmt: skip
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the target did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)

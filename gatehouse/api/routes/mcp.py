"""Admin routes of the MCP gateway: review an adapter's tools and pin their definitions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from gatehouse.api.auth import Principal, authenticate
from gatehouse.api.body import StrictJSONRoute
from gatehouse.api.errors import json_response
from gatehouse.domain.tools import tool_digest
from gatehouse.errors import Conflict
from gatehouse.mcp.gateway import Gateway
from gatehouse.mcp.upstream import UpstreamError

router = APIRouter(prefix="/api/v1", tags=["mcp"], route_class=StrictJSONRoute)
Auth = Annotated[Principal, Depends(authenticate)]


class PinIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # The digest the admin reviewed (from the tools listing): the pin is refused when the
    # upstream offers another definition by now. Absent: pin what the upstream offers now.
    digest: str | None = Field(None, min_length=64, max_length=64)


def _gateway(request: Request, name: str) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    gateway.adapter_or_404(name)
    return gateway


@router.get("/adapters/{adapter}/tools")
async def list_adapter_tools(adapter: str, request: Request, who: Auth) -> Response:
    who.require("admin")
    gateway = _gateway(request, adapter)
    try:
        offered = await gateway.offered(adapter, who.tenant, fresh=True)
    except UpstreamError as exc:
        raise Conflict(exc.message, code="upstream_unavailable") from None
    vetted = await gateway.vetting.vet(adapter, offered)
    pins = await gateway.store.tool_pins(adapter)
    tools = []
    for tool in offered:
        name = tool.get("name")
        pin = pins.get(str(name))
        tools.append({
            "name": name,
            "status": "withheld" if name in vetted.withheld else "listed",
            "reason": vetted.withheld.get(str(name)),
            "digest": tool_digest(tool),
            "flags": list(gateway.vetting.flags(tool)),
            "definition": tool,
            "pin": pin.to_public() if pin is not None else None,
        })  # fmt: skip
    return json_response({"adapter": adapter, "tools": tools})


@router.post("/adapters/{adapter}/tools/{tool}/pin")
async def pin_tool(adapter: str, tool: str, body: PinIn, request: Request, who: Auth) -> Response:
    who.require("admin")
    gateway = _gateway(request, adapter)
    try:
        if body.digest is not None:
            offered = {t.get("name"): t for t in await gateway.offered(adapter, who.tenant, fresh=True)}
            now = offered.get(tool)
            if now is not None and tool_digest(now) != body.digest:
                raise Conflict(
                    f"`{tool}` of adapter `{adapter}` is no longer the reviewed definition",
                    code="tool_definition_changed",
                    details={"digest": tool_digest(now)},
                )
        pinned = await gateway.pin(adapter, who.tenant, tool, who.identity.id)
    except UpstreamError as exc:
        raise Conflict(exc.message, code="upstream_unavailable") from None
    return json_response(pinned)

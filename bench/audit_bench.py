"""What the tamper-evident audit log costs on the submit path.

    python bench/audit_bench.py [--seconds 10] [--connections 64]

Runs the submit phase of `service_bench.py` (POST /api/v1/jobs through the full gate and
persistence, 64 in flight, wrk if installed) twice in the same run: against a server writing
the hash-chained audit entries in the job's transaction, and against one started with the
hidden `--no-audit` flag (a no-op audit sink). Prints both and the ratio.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from service_bench import Route, Server, _no_rate_limit_args, measure, submit_body


def run(extra: list[str], seconds: float, connections: int, wrk: str | None) -> tuple[float, float, float]:
    tmp = Path(tempfile.mkdtemp(prefix="gatehouse-audit-bench-"))
    server = Server(
        data_dir=tmp / "data", log_path=tmp / "server.log", extra_args=[*_no_rate_limit_args(), *extra]
    )
    try:
        server.start()
        key = server.create_agent()
        route = Route(
            label="submit",
            method="POST",
            path="/api/v1/jobs",
            expect=201,
            headers={"X-API-Key": key, "Content-Type": "application/json"},
            body=submit_body("job.bench.submit"),
        )
        opts = dict(wrk=wrk, connections=connections, workdir=tmp, verbose=False)
        measure(route, server, seconds=1.0, **opts)  # warm-up
        res = measure(route, server, seconds=seconds, **opts)
        return res.rps, res.p50_ms, res.p99_ms
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--connections", type=int, default=64)
    args = ap.parse_args()
    wrk = shutil.which("wrk")
    print(
        f"load generator: {'wrk' if wrk else 'python asyncio'}, {args.connections} in flight, "
        f"{args.seconds:g} s per phase"
    )
    with_audit = run([], args.seconds, args.connections, wrk)
    without = run(["--no-audit"], args.seconds, args.connections, wrk)
    print(f"{'server':<22} {'submits/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
    for name, (rps, p50, p99) in (("audit on", with_audit), ("audit off (no-op)", without)):
        print(f"{name:<22} {rps:>10,.0f} {p50:>8.2f} {p99:>8.2f}")
    print(f"audit on / off throughput: {with_audit[0] / without[0]:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Submit throughput with one and two API replicas on PostgreSQL, against SQLite, in one run.

    python bench/scale_bench.py             # 12 s per configuration, 64 connections
    python bench/scale_bench.py --quick     # 4.5 s per configuration

Processes, all real and all started by this script on free loopback ports:

  - `gatehouse serve` on SQLite (the single process of `bench/service_bench.py`);
  - PostgreSQL (`tests/services.py`, with `pg_stat_statements` loaded) and nats-server;
  - two `gatehouse serve --role api` replicas and one `--role scheduler` on that database and bus,
    sharing a keys directory.

Three configurations are loaded with `POST /api/v1/jobs` (the body and topic of
`service_bench.py`: no worker serves it, so each submit is validation, the policy decision and the
transaction that stores the job, its decision record and its audit entries):

  sqlite  the SQLite process alone;
  pg x1   API replica 1 alone (replica 2 and the scheduler idle beside it);
  pg x2   both API replicas, the connections split between them (what a load balancer does).

They alternate in short rounds (on a shared machine the CPU speed drifts within seconds). For each,
the table gives throughput, the median round's p50 and the worst round's p99, the CPU each process
used (100% = one core: the gatehouse processes, the PostgreSQL backends, nats-server and the load
generator), and, for PostgreSQL, the statements (`pg_stat_statements` calls, BEGIN and COMMIT
included: each is one round trip) and the transactions (`pg_stat_database.xact_commit`) per
submit. Targets (issue 19): pg x1 >= 0.7x sqlite; pg x2 >= 1.5x pg x1 where the machine has the
cores. Exits 1 only when the run is broken (a process does not start, a submit is not 201).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]  # service_bench; tests/services (+ harness)

import service_bench as sb  # noqa: E402
import services  # noqa: E402

TARGET_PG_VS_SQLITE = 0.7
TARGET_TWO_VS_ONE = 1.5


# --- process CPU ----------------------------------------------------------------------------


def _proc_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children_cpu(parent: int) -> float:
    """CPU seconds of the live children of `parent` (PostgreSQL's backends under the postmaster)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == parent:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _own_children_cpu() -> float:
    """CPU seconds of this script's finished children (the wrk processes) and of itself (the
    asyncio generator, when wrk is missing)."""
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    me = resource.getrusage(resource.RUSAGE_SELF)
    return kids.ru_utime + kids.ru_stime + me.ru_utime + me.ru_stime


# --- the database's own counters ---------------------------------------------------------------


async def _db_counters(admin_url: str, database: str) -> tuple[float, float]:
    """(statement calls, committed transactions) so far on `database`."""
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    try:
        calls = await conn.fetchval(
            "SELECT coalesce(sum(s.calls), 0) FROM pg_stat_statements s "
            "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = $1",
            database,
        )
        # The statistics collector flushes its counters at most once a second and on idle:
        # pg_stat_statements is exact, xact_commit may trail by a flush.
        commits = await conn.fetchval("SELECT xact_commit FROM pg_stat_database WHERE datname = $1", database)
    finally:
        await conn.close()
    return float(calls), float(commits)


def db_counters(admin_url: str, database: str) -> tuple[float, float]:
    return asyncio.run(_db_counters(admin_url, database))


async def _enable_statements(admin_url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    finally:
        await conn.close()


# --- one configuration under load --------------------------------------------------------------


@dataclass
class Sample:
    result: sb.Result
    cpu: dict[str, float]  # process name -> CPU seconds over the round
    statements: float = 0.0  # beyond the idle rate
    starved: float = 0.0  # seconds the loaded processes' threads were runnable without a CPU


def _load(targets: list[sb.Server], route_for: Callable[[sb.Server], sb.Route], opts: dict) -> sb.Result:
    """Load every target at once, the connections split between them; one merged result
    (requests summed over the same wall time, the worst p99, the median p50)."""
    share = max(1, opts["connections"] // len(targets))
    results: list[sb.Result | BaseException] = [RuntimeError("not run")] * len(targets)

    def run(i: int) -> None:
        try:
            results[i] = sb.measure(
                route_for(targets[i]),
                targets[i],
                wrk=opts["wrk"],
                seconds=opts["seconds"],
                connections=share,
                workdir=opts["workdir"] / f"t{i}",
                verbose=False,
            )
        except BaseException as exc:
            results[i] = exc

    for i in range(len(targets)):
        (opts["workdir"] / f"t{i}").mkdir(exist_ok=True)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(targets))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done: list[sb.Result] = []
    for r in results:
        if isinstance(r, BaseException):
            raise r
        done.append(r)
    if len(done) == 1:
        return done[0]
    seconds = max(r.seconds for r in done)
    requests = sum(r.requests for r in done)
    statuses: dict[int, int] = {}
    for r in done:
        for code, n in r.statuses.items():
            statuses[code] = statuses.get(code, 0) + n
    return sb.Result(
        route=done[0].route,
        generator=done[0].generator,
        requests=requests,
        seconds=seconds,
        rps=requests / seconds if seconds else 0.0,
        p50_ms=sorted(r.p50_ms for r in done)[len(done) // 2],
        p99_ms=max(r.p99_ms for r in done),
        statuses=statuses,
        unexpected=sum(r.unexpected for r in done),
        socket_errors=sum(r.socket_errors for r in done),
    )


def _fmt_cpu(cpu: dict[str, float], seconds: float) -> str:
    return ", ".join(f"{k} {100 * v / seconds:.0f}%" for k, v in cpu.items() if seconds)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=None, help="per configuration (12; 4.5 quick)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--quick", action="store_true", help="short phases")
    ap.add_argument("--python-load", action="store_true", help="use the asyncio generator")
    args = ap.parse_args(argv)
    seconds = args.seconds if args.seconds is not None else (4.5 if args.quick else 12.0)
    rounds = max(1, args.rounds)
    wrk = None if args.python_load else shutil.which("wrk")

    tmp = Path(tempfile.mkdtemp(prefix="gatehouse-scale-bench-"))
    pg = services.PostgresServer.start_new("shared_preload_libraries=pg_stat_statements")
    nats = services.NatsServer(folder=tmp / "nats", port=sb.free_port())
    (tmp / "nats").mkdir()
    nats.start()
    processes: list[sb.Server] = []
    try:
        asyncio.run(_enable_statements(pg.admin_url))
        url = pg.new_database()
        database = url.rsplit("/", 1)[1]
        no_limits = sb._no_rate_limit_args()
        shared = ["--store", url, "--bus", nats.url, "--keys-dir", str(tmp / "keys"), *no_limits]

        def server(name: str, extra: list[str]) -> sb.Server:
            s = sb.Server(data_dir=tmp / name, log_path=tmp / f"{name}.log", extra_args=extra)
            processes.append(s)
            s.start(timeout=180)  # a loaded machine: the import alone can take tens of seconds
            return s

        sqlite = server("sqlite", no_limits)
        api1 = server("api1", [*shared, "--role", "api"])  # the first creates the schema and admin
        api2 = server("api2", [*shared, "--role", "api"])
        scheduler = server("scheduler", [*shared, "--role", "scheduler"])
        keys = {sqlite.url: sqlite.create_agent(), api1.url: api1.create_agent()}
        keys[api2.url] = keys[api1.url]  # one database: the agent exists on both replicas

        body = sb.submit_body("job.bench.submit")

        def route_for(s: sb.Server) -> sb.Route:
            return sb.Route(
                label="submit",
                method="POST",
                path="/api/v1/jobs",
                expect=201,
                headers={"X-API-Key": keys[s.url], "Content-Type": "application/json"},
                body=body,
            )

        configs: dict[str, list[sb.Server]] = {"sqlite": [sqlite], "pg x1": [api1], "pg x2": [api1, api2]}
        watched: dict[str, Callable[[], float]] = {
            "sqlite": lambda: _proc_cpu(sqlite.pid),
            "api1": lambda: _proc_cpu(api1.pid),
            "api2": lambda: _proc_cpu(api2.pid),
            "scheduler": lambda: _proc_cpu(scheduler.pid),
            "postgres": lambda: _proc_cpu(pg.proc.pid) + _children_cpu(pg.proc.pid),  # type: ignore[union-attr]
            "nats": lambda: _proc_cpu(nats.proc.pid),  # type: ignore[union-attr]
            "load": _own_children_cpu,
        }

        def wait(targets: list[sb.Server]) -> float:
            return sum(t.run_delay() or 0.0 for t in targets)

        opts = {"wrk": wrk, "connections": args.connections, "workdir": tmp, "seconds": 1.0}
        print(
            f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {sb._uvicorn_stack()}, "
            f"PostgreSQL {pg.bin.parent.name}, load generator "
            f"{'wrk -t1' if wrk else 'python asyncio'} with {args.connections} connections in all"
        )
        print(f"load average before: {sb._loadavg()} (a shared machine: other work skews every figure)")
        for targets in configs.values():  # warm-up: imports, pools, prepared statements
            _load(targets, route_for, opts)
        opts["seconds"] = seconds / rounds
        # The replicas query the database when idle too (the policy sync every second, the
        # scheduler's expiry and dispatch polling, health checks): measure that rate at rest and
        # take it out of the per-submit figures.
        time.sleep(1.1)  # let the backends flush their xact_commit counters
        idle0, t_idle = db_counters(pg.admin_url, database), time.monotonic()
        time.sleep(3.0)
        idle1 = db_counters(pg.admin_url, database)
        idle_seconds = time.monotonic() - t_idle
        idle_calls, idle_commits = ((idle1[i] - idle0[i]) / idle_seconds for i in (0, 1))
        samples: dict[str, list[Sample]] = {name: [] for name in configs}
        commits0, t_rounds = db_counters(pg.admin_url, database)[1], time.monotonic()
        for _ in range(rounds):
            for name, targets in configs.items():
                cpu0 = {k: f() for k, f in watched.items()}
                wait0 = wait(targets)
                db0, t0 = db_counters(pg.admin_url, database), time.monotonic()
                res = _load(targets, route_for, opts)
                db1, t1 = db_counters(pg.admin_url, database), time.monotonic()
                cpu = {k: f() - cpu0[k] for k, f in watched.items()}
                samples[name].append(
                    Sample(res, cpu, db1[0] - db0[0] - idle_calls * (t1 - t0), wait(targets) - wait0)
                )
        # xact_commit is flushed by each backend at most once a second (PostgreSQL 15): counted
        # over the whole run after a pause, not per round.
        time.sleep(1.5)
        span = time.monotonic() - t_rounds - 1.5
        commits = db_counters(pg.admin_url, database)[1] - commits0 - idle_commits * span
        print()
        head = f"{'config':<8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}"
        head += f" {'stmts/submit':>12} {'no-CPU wait':>11}"
        head += "  CPU (100% = one core)"
        print(head)
        print("-" * len(head))
        merged: dict[str, sb.Result] = {}
        broken: list[str] = []
        for name, rows in samples.items():
            r = sb.merge([s.result for s in rows])
            merged[name] = r
            n = sum(s.result.requests for s in rows)
            cpu: dict[str, float] = {}
            for s in rows:
                for k, v in s.cpu.items():
                    cpu[k] = cpu.get(k, 0.0) + v
            shown = {k: v for k, v in cpu.items() if k in ("load", "nats") or v / r.seconds >= 0.02}
            stmts = sum(s.statements for s in rows) / n if n and name != "sqlite" else None
            print(
                f"{name:<8} {r.rps:>8,.0f} {r.p50_ms:>8.1f} {r.p99_ms:>8.1f} {r.errors:>6} "
                f"{'-' if stmts is None else f'{stmts:.1f}':>12} "
                f"{100 * sum(s.starved for s in rows) / r.seconds:>10.0f}%  "
                f"{_fmt_cpu(shown, r.seconds)}"
            )
            if r.errors:
                broken.append(f"{name}: {r.errors} submits were not answered 201")
        print()
        sq, one, two = merged["sqlite"].rps, merged["pg x1"].rps, merged["pg x2"].rps
        r1 = one / sq if sq else 0.0
        r2 = two / one if one else 0.0
        print(
            f"pg x1 / sqlite: {r1:.2f}x (target >= {TARGET_PG_VS_SQLITE}x: "
            f"{'met' if r1 >= TARGET_PG_VS_SQLITE else 'NOT MET'})"
        )
        print(
            f"pg x2 / pg x1: {r2:.2f}x (target >= {TARGET_TWO_VS_ONE}x where the machine has the cores: "
            f"{'met' if r2 >= TARGET_TWO_VS_ONE else 'NOT MET'}; two replicas, PostgreSQL, the load "
            f"generator and nats-server want 4+ cores, this machine has {os.cpu_count()})"
        )
        per_round = "  ".join(
            "/".join(f"{samples[n][i].result.rps:,.0f}" for n in configs) for i in range(rounds)
        )
        print(
            f"{rounds} rounds of {seconds / rounds:g} s per configuration, "
            f"sqlite/pg x1/pg x2 req/s: {per_round}"
        )
        pg_submits = sum(s.result.requests for n in ("pg x1", "pg x2") for s in samples[n])
        if pg_submits:
            print(
                f"PostgreSQL transactions committed per submit: {commits / pg_submits:.2f} "
                f"(pg_stat_database.xact_commit over the run, less the idle rate "
                f"of {idle_commits:.1f}/s; statements at rest: {idle_calls:.1f}/s)"
            )
        print(f"load average after: {sb._loadavg()}")
        print(
            "CPU: each process's CPU time over the configuration's rounds (postgres: the postmaster "
            "and its backends; load: the wrk processes);\nno-CPU wait: time the loaded gatehouse "
            "processes' threads were ready to run but had no CPU (other work on the machine)"
        )
        for b in broken:
            print(f"error: {b}", file=sys.stderr)
        return 1 if broken else 0
    except Exception as exc:
        print(f"error: {exc}", file=sys.stderr)
        for s in processes:
            tail = s.log_tail()
            if tail:
                print(f"--- {s.log_path} ---\n{tail}", file=sys.stderr)
        return 1
    finally:
        for s in processes:
            s.stop()
        nats.stop()
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

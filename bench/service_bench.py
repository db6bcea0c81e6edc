"""Throughput and latency of a real `gatehouse serve` process, end to end over HTTP.

    python bench/service_bench.py                     # 10 s per phase, 64 connections
    python bench/service_bench.py --quick             # 3 s per phase, 300 end-to-end jobs
    python bench/service_bench.py --python-load       # force the asyncio load generator
    python bench/service_bench.py --profile /tmp/gh   # py-spy the server during the submit phase

The script starts `python -m gatehouse serve` on the seed policy with a fresh data directory
on free ports, creates an agent identity, and then measures, in one run:

  (a) `GET /api/v1/whoami` with the agent key: the floor cost of an authenticated route;
  (b) `POST /api/v1/jobs` with a realistic body (a 150-character prompt, two labels, a
      capability) on `job.bench.submit`, a topic no worker serves: validation, identity scope,
      the policy decision, and the transaction that stores the job and its decision record.
      Every response must be 201;
  (c) end-to-end completion: N `job.demo.echo` jobs submitted 64 at a time, which the built-in
      workers lease (dispatch gate) and finish; the clock stops when the server's
      `gatehouse_jobs_finished_total{state="succeeded"}` has grown by N.

The server's default rate limits are switched off (`--rate-limit-identity 0
--rate-limit-tenant 0`, when this version has the flags; `--keep-rate-limits` keeps them):
the benchmark measures capacity, not the token buckets.

(a) and (b) run under `wrk -t1 -c64 --latency` (Lua script for the POST body and to count
unexpected statuses); without wrk, or with `--python-load`, an asyncio generator on raw
HTTP/1.1 keep-alive connections does the same. The table says which one ran.

Targets (DESIGN.md section 8): submit throughput >= 0.5x the trivial GET, submit p99 < 50 ms
with 64 requests in flight. Like policy_bench.py this prints figures and exits 0 whether or not
the targets hold; it exits 1 only when the run itself is broken (the server does not start, a
submit is answered with something other than 201, end-to-end jobs do not all succeed).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import itertools
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "examples" / "policies" / "seed.yaml"
ADMIN_KEY = "ghk_bench_admin_key_0123456789abcdef"
HOST = "127.0.0.1"

TARGET_RATIO = 0.5
TARGET_P99_MS = 50.0

AGENT = {
    "name": "bench-agent",
    "tenant": "default",
    "roles": ["agent"],
    "topics": ["**"],
    "capabilities": ["*"],
}


# --- the server ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    data_dir: Path
    log_path: Path
    port: int = 0
    metrics_port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    extra_args: list[str] = field(default_factory=list)
    policy: Path = SEED

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{HOST}:{self.metrics_port}/metrics"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> None:
        self.port, self.metrics_port = free_port(), free_port()
        args = [
            sys.executable,
            "-m",
            "gatehouse",
            "serve",
            "--policy",
            str(self.policy),
            "--data-dir",
            str(self.data_dir),
            "--port",
            str(self.port),
            "--metrics-port",
            str(self.metrics_port),
            "--log-level",
            "warning",
            *self.extra_args,
        ]
        env = {**os.environ, "GATEHOUSE_ADMIN_KEY": ADMIN_KEY}
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited early:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/readyz", timeout=0.5).status_code == 200:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"the server was not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def cpu_seconds(self) -> float | None:
        """User + system CPU time of the server process so far (Linux /proc), else None."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None
        # After the `(comm)` field: state is fields[0], utime and stime are fields 11 and 12.
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def run_delay(self) -> float | None:
        """Seconds the server's threads spent runnable but waiting for a CPU (schedstat)."""
        total = 0
        try:
            for task in Path(f"/proc/{self.pid}/task").iterdir():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    total += int((task / "schedstat").read_text().split()[1])
        except OSError:
            return None
        return total / 1e9

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def create_agent(self) -> str:
        r = httpx.post(
            self.url + "/api/v1/identities",
            json=AGENT,
            headers={"X-API-Key": ADMIN_KEY},
            timeout=10,
        )
        if r.status_code != 201:
            raise RuntimeError(f"creating the agent identity: {r.status_code} {r.text}")
        return str(r.json()["api_key"])

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        """The sum of every sample of `name` whose labels include `labels` (0 if none)."""
        text = httpx.get(self.metrics_url, timeout=5).text
        return metric_value(text, name, labels or {})


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def metric_value(text: str, name: str, labels: dict[str, str]) -> float:
    total = 0.0
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if not m or m.group(1) != name:
            continue
        have = dict(_LABEL.findall(m.group(3) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(m.group(4))
    return total


# --- requests --------------------------------------------------------------------------------


def submit_body(topic: str, prompt_chars: int = 150) -> bytes:
    """A realistic job body: a 150-character prompt, two labels, a capability and a risk tag
    (what an agent's deploy or ops job carries; about 300 bytes in all)."""
    base = "summarise the staging inventory and list the hosts that drifted from the baseline since "
    base += "the last deploy, grouped by service, with the owning team for each host; "
    body: dict[str, Any] = {
        "topic": topic,
        "prompt": (base * (prompt_chars // len(base) + 1))[:prompt_chars],
        "labels": {"env": "staging", "team": "core"},
        "meta": {"capability": "infra.read", "risk_tags": ["change"]},
    }
    return json.dumps(body, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Route:
    label: str
    method: str
    path: str
    expect: int
    headers: dict[str, str]
    body: bytes = b""
    # A body template: `@N@` becomes a number unique to the request and `@S@` that number modulo
    # `spread` (e.g. a step id that must not repeat, spread over a fixed set of sessions).
    unique: bool = False
    spread: int = 1

    def raw(self, n: int = 0) -> bytes:
        """The request as HTTP/1.1 bytes, for the asyncio generator (`n`: the unique number)."""
        body = self.body
        if self.unique:
            body = body.replace(b"@N@", str(n).encode()).replace(b"@S@", str(n % self.spread).encode())
        lines = [f"{self.method} {self.path} HTTP/1.1", f"Host: {HOST}"]
        lines += [f"{k}: {v}" for k, v in self.headers.items()]
        if body or self.method != "GET":
            lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class Result:
    route: Route
    generator: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    statuses: dict[int, int] = field(default_factory=dict)
    unexpected: int = 0  # responses whose status is not route.expect
    socket_errors: int = 0  # connect / read / write errors and timeouts
    server_cpu: float | None = None  # CPU seconds the server process used during the phase
    server_wait: float | None = None  # seconds its threads were runnable but had no CPU

    @property
    def errors(self) -> int:
        return self.unexpected + self.socket_errors

    @property
    def cpu_us_per_request(self) -> float | None:
        if self.server_cpu is None or not self.requests:
            return None
        return self.server_cpu / self.requests * 1e6

    @property
    def cpu_share(self) -> float | None:
        if self.server_cpu is None or not self.seconds:
            return None
        return self.server_cpu / self.seconds

    @property
    def wait_share(self) -> float | None:
        if self.server_wait is None or not self.seconds:
            return None
        return self.server_wait / self.seconds


# --- wrk -------------------------------------------------------------------------------------

_WRK_LUA = """
local threads = {}
function setup(thread)
  table.insert(threads, thread)
end
function init(args)
  unexpected = 0
  wrk.method = %(method)s
  wrk.body = %(body)s
%(headers)s
end
%(request)s
function response(status, headers, body)
  if status ~= %(expect)d then
    unexpected = unexpected + 1
  end
end
function done(summary, latency, requests)
  local n = 0
  for _, t in ipairs(threads) do
    n = n + t:get("unexpected")
  end
  io.write(string.format("BENCH unexpected=%%d p50_us=%%d p99_us=%%d requests=%%d\\n",
    n, latency:percentile(50), latency:percentile(99), summary.requests))
end
"""


# Per-request bodies for `Route.unique`: wrk runs one thread (-t1), so a counter is unique.
_WRK_UNIQUE = """
counter = 0
function request()
  counter = counter + 1
  local body = string.gsub(wrk.body, "@N@", tostring(counter))
  body = string.gsub(body, "@S@", tostring(counter %% %(spread)d))
  return wrk.format(nil, nil, nil, body)
end
"""


def _lua_str(s: str | bytes) -> str:
    text = s.decode() if isinstance(s, bytes) else s
    level = "="
    while f"]{level}]" in text:
        level += "="
    return f"[{level}[{text}]{level}]"


def wrk_script(route: Route, path: Path) -> Path:
    headers = "\n".join(f"  wrk.headers[ {_lua_str(k)} ] = {_lua_str(v)}" for k, v in route.headers.items())
    path.write_text(
        _WRK_LUA
        % {
            "method": _lua_str(route.method),
            "body": _lua_str(route.body) if route.body else "nil",
            "headers": headers,
            "expect": route.expect,
            "request": _WRK_UNIQUE % {"spread": route.spread} if route.unique else "",
        }
    )
    return path


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _ms(value: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", value.strip())
    if not m:
        raise ValueError(f"cannot read wrk latency `{value}`")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(out: str, route: Route) -> Result:
    """Requests/sec, the latency distribution, non-2xx and socket errors from wrk's report."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if rps is None:
        raise RuntimeError(f"no Requests/sec in wrk's output:\n{out}")
    dist = dict(re.findall(r"^\s+(\d+)%\s+(\S+)\s*$", out, re.M))
    total = re.search(r"(\d+) requests in ([\d.]+\w+),", out)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    extra = re.search(r"BENCH unexpected=(\d+) p50_us=(\d+) p99_us=(\d+)", out)
    res = Result(
        route=route,
        generator="wrk",
        requests=int(total.group(1)) if total else 0,
        seconds=_ms(total.group(2)) / 1e3 if total else 0.0,
        rps=float(rps.group(1)),
        p50_ms=_ms(dist["50"]) if "50" in dist else float("nan"),
        p99_ms=_ms(dist["99"]) if "99" in dist else float("nan"),
        socket_errors=sum(int(g) for g in socket.groups()) if socket else 0,
    )
    if extra:
        # The Lua `done` hook has the exact figures (microseconds) and counts every status
        # other than the expected one (wrk's own "Non-2xx" line lets a 200 pass for a 201).
        res.unexpected = int(extra.group(1))
        res.p50_ms = int(extra.group(2)) / 1e3
        res.p99_ms = int(extra.group(3)) / 1e3
    if non2xx:
        res.unexpected = max(res.unexpected, int(non2xx.group(1)))
    res.statuses = {route.expect: res.requests - res.unexpected}
    return res


def run_wrk(
    wrk: str, url: str, route: Route, seconds: float, connections: int, workdir: Path
) -> tuple[Result, str]:
    script = wrk_script(route, workdir / f"wrk-{route.method.lower()}.lua")
    cmd = [
        wrk,
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url + route.path,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=seconds + 60)
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return parse_wrk(out.stdout, route), out.stdout


# --- the asyncio fallback --------------------------------------------------------------------


class _Closed(Exception):
    pass


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; (status, server keeps the connection open)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        raise _Closed from exc
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, chunked, keep = 0, False, True
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding" and "chunked" in value:
            chunked = True
        elif name == "connection" and value == "close":
            keep = False
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status, keep


@dataclass
class _Tally:
    latencies: list[float] = field(default_factory=list)
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    socket_errors: int = 0


async def _connection(
    request: Callable[[], bytes],
    tally: _Tally,
    *,
    deadline: float | None,
    budget: list[int] | None,
    port: int,
) -> None:
    """One keep-alive connection sending requests back to back until the deadline or budget."""
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    clock = time.perf_counter
    try:
        while True:
            if deadline is not None and clock() >= deadline:
                return
            if budget is not None:
                if budget[0] <= 0:
                    return
                budget[0] -= 1
            if writer is None:
                try:
                    reader, writer = await asyncio.open_connection(HOST, port)
                except OSError:
                    tally.socket_errors += 1
                    await asyncio.sleep(0.01)
                    continue
            assert reader is not None
            t0 = clock()
            try:
                writer.write(request())
                status, keep = await _read_response(reader)
            except (_Closed, ConnectionError):
                tally.socket_errors += 1
                writer.close()
                reader = writer = None
                continue
            tally.latencies.append(clock() - t0)
            tally.statuses[status] += 1
            if not keep:
                writer.close()
                reader = writer = None
    finally:
        if writer is not None:
            writer.close()


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values)) - 1))
    return sorted_values[i]


async def python_load(
    route: Route,
    port: int,
    *,
    connections: int,
    seconds: float | None = None,
    count: int | None = None,
) -> Result:
    """Run `connections` connections for `seconds`, or until `count` requests were answered."""
    fixed = route.raw()
    numbers = itertools.count(1)

    def request() -> bytes:
        return route.raw(next(numbers)) if route.unique else fixed

    tally = _Tally()
    start = time.perf_counter()
    deadline = start + seconds if seconds is not None else None
    budget = [count] if count is not None else None
    await asyncio.gather(
        *(
            _connection(request, tally, deadline=deadline, budget=budget, port=port)
            for _ in range(connections)
        )
    )
    elapsed = time.perf_counter() - start
    lat = sorted(tally.latencies)
    done = len(lat)
    unexpected = sum(n for s, n in tally.statuses.items() if s != route.expect)
    return Result(
        route=route,
        generator="python",
        requests=done,
        seconds=elapsed,
        rps=done / elapsed if elapsed > 0 else 0.0,
        p50_ms=_percentile(lat, 50) * 1e3,
        p99_ms=_percentile(lat, 99) * 1e3,
        statuses=dict(tally.statuses),
        unexpected=unexpected,
        socket_errors=tally.socket_errors,
    )


# --- profiling -------------------------------------------------------------------------------


@contextlib.contextmanager
def profiling(pid: int, out_dir: Path | None, seconds: float) -> Iterator[Path | None]:
    """`py-spy record` (collapsed stacks) on the server while the body runs."""
    spy = shutil.which("py-spy")
    if out_dir is None:
        yield None
        return
    if spy is None:
        print("note: --profile needs py-spy (pip install py-spy); not profiling", file=sys.stderr)
        yield None
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = out_dir / "submit.folded"
    log = open(out_dir / "py-spy.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            spy,
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
            "--rate",
            "250",
            "--duration",
            str(max(1, int(seconds))),
            "--output",
            str(raw),
            "--nonblocking",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield raw
    finally:
        try:
            proc.wait(seconds + 30)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
            proc.wait(10)
        log.close()


_LAYERS = (
    # (name, a substring of the frame's file); a sample is charged to the innermost match.
    ("sqlite (store)", "gatehouse/store/"),
    ("json encode/decode", "json/"),
    ("pydantic validation", "pydantic"),
    ("ingress (sanitise, classify)", "gatehouse/ingress/"),
    ("audit chain", "gatehouse/audit/"),
    ("policy kernel", "gatehouse/policy/"),
    ("policy kernel", "gatehouse/kernel/"),
    ("gatehouse control", "gatehouse/control/"),
    ("gatehouse api", "gatehouse/api/"),
    ("gatehouse other", "gatehouse/"),
    ("prometheus_client", "prometheus_client"),
    ("fastapi routing/deps", "fastapi/"),
    ("starlette", "starlette/"),
    ("h11 http parsing", "h11/"),
    ("uvicorn protocol", "uvicorn/"),
    ("asyncio loop + socket I/O", "asyncio/"),
)


def summarise_profile(raw: Path, top: int = 20) -> str:
    """Where the server's samples went, from py-spy's collapsed stacks."""
    if not raw.exists():
        return f"(no profile written: see {raw.parent / 'py-spy.log'})"
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    layers: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        count = int(n)
        frames = [_frame(f) for f in stack.split(";")]
        total += count
        for f in set(frames):
            if "(gatehouse/" in f and not f.startswith(("<module> ", "serve ")):
                inclusive[f] += count
        own[frames[-1]] += count
        layers[_layer(frames)] += count
    if not total:
        return "(empty profile)"
    out = [
        f"{total} samples (busy threads only)",
        "",
        "by layer (each sample charged to its innermost recognised frame):",
    ]
    out += [f"{100 * n / total:7.1f}%  {name}" for name, n in layers.most_common()]
    out += ["", "gatehouse functions, inclusive (time in the function and what it calls):"]
    out += [f"{100 * n / total:7.1f}%  {f}" for f, n in inclusive.most_common(top)]
    out += ["", "self time (the innermost frame of each sample):"]
    out += [f"{100 * n / total:7.1f}%  {f}" for f, n in own.most_common(top)]
    return "\n".join(out)


def _layer(frames: list[str]) -> str:
    for f in reversed(frames):
        for name, marker in _LAYERS:
            if f"({marker}" in f or f"/{marker}" in f:
                return name
    return "other"


def _frame(frame: str) -> str:
    # py-spy raw frames look like `function (path/to/file.py:123)`; drop the line number and
    # shorten the path so one function is one row.
    m = re.match(r"(.*) \((.*?)(?::\d+)?\)$", frame)
    if not m:
        return frame
    func, path = m.groups()
    for marker in ("site-packages/", "/lib/python3.", f"{ROOT}/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "/lib/python3.":
                path = path.split("/", 1)[-1]
            break
    return f"{func} ({path})"


# --- the phases ------------------------------------------------------------------------------


@dataclass
class Completion:
    jobs: int
    submit_seconds: float
    total_seconds: float
    submit_errors: int
    succeeded: int

    @property
    def rate(self) -> float:
        return self.succeeded / self.total_seconds if self.total_seconds > 0 else 0.0


def completion_phase(server: Server, key: str, jobs: int, connections: int, timeout: float) -> Completion:
    route = Route(
        label="POST /api/v1/jobs (echo)",
        method="POST",
        path="/api/v1/jobs",
        expect=201,
        headers={"X-API-Key": key, "Content-Type": "application/json"},
        body=submit_body("job.demo.echo"),
    )
    succeeded = {"state": "succeeded"}
    before = server.metric("gatehouse_jobs_finished_total", succeeded)
    start = time.perf_counter()
    res = asyncio.run(python_load(route, server.port, connections=connections, count=jobs))
    submitted = time.perf_counter() - start
    accepted = res.statuses.get(201, 0)
    deadline = start + timeout
    done = 0
    while True:
        done = int(server.metric("gatehouse_jobs_finished_total", succeeded) - before)
        if done >= accepted or time.perf_counter() > deadline:
            break
        time.sleep(0.02)
    return Completion(
        jobs=jobs,
        submit_seconds=submitted,
        total_seconds=time.perf_counter() - start,
        submit_errors=res.errors,
        succeeded=done,
    )


def measure(
    route: Route,
    server: Server,
    *,
    wrk: str | None,
    seconds: float,
    connections: int,
    workdir: Path,
    verbose: bool,
) -> Result:
    cpu0, wait0 = server.cpu_seconds(), server.run_delay()
    if wrk is not None:
        res, out = run_wrk(wrk, server.url, route, seconds, connections, workdir)
        if verbose:
            print(out.rstrip())
    else:
        res = asyncio.run(python_load(route, server.port, connections=connections, seconds=seconds))
    cpu1, wait1 = server.cpu_seconds(), server.run_delay()
    if cpu0 is not None and cpu1 is not None:
        res.server_cpu = cpu1 - cpu0
    if wait0 is not None and wait1 is not None:
        res.server_wait = wait1 - wait0
    return res


def merge(rounds: list[Result]) -> Result:
    """One result for a route measured in several rounds: totals, the median round's p50 and the
    worst round's p99 (percentiles cannot be added; the worst is the honest bound)."""
    first = rounds[0]
    requests = sum(r.requests for r in rounds)
    seconds = sum(r.seconds for r in rounds)
    statuses: dict[int, int] = {}
    for r in rounds:
        for code, n in r.statuses.items():
            statuses[code] = statuses.get(code, 0) + n
    cpus = [r.server_cpu for r in rounds]
    waits = [r.server_wait for r in rounds]
    return Result(
        route=first.route,
        generator=first.generator,
        requests=requests,
        seconds=seconds,
        rps=requests / seconds if seconds else 0.0,
        p50_ms=statistics.median(r.p50_ms for r in rounds),
        p99_ms=max(r.p99_ms for r in rounds),
        statuses=statuses,
        unexpected=sum(r.unexpected for r in rounds),
        socket_errors=sum(r.socket_errors for r in rounds),
        server_cpu=None if None in cpus else sum(c or 0.0 for c in cpus),
        server_wait=None if None in waits else sum(w or 0.0 for w in waits),
    )


def _fmt_row(cols: list[str], widths: list[int]) -> str:
    first, *rest = cols
    return f"{first:<{widths[0]}}" + "".join(f"  {c:>{w}}" for c, w in zip(rest, widths[1:], strict=True))


def table(results: list[Result]) -> str:
    head = [
        "route",
        "req/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "server CPU",
        "CPU us/req",
        "no-CPU wait",
    ]
    rows = [
        [
            r.route.label,
            f"{r.rps:,.0f}",
            f"{r.p50_ms:.2f}",
            f"{r.p99_ms:.2f}",
            f"{r.errors}",
            "?" if r.cpu_share is None else f"{100 * r.cpu_share:.0f}%",
            "?" if r.cpu_us_per_request is None else f"{r.cpu_us_per_request:,.0f}",
            "?" if r.wait_share is None else f"{100 * r.wait_share:.0f}%",
        ]
        for r in results
    ]
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]
    lines = [_fmt_row(head, widths), "  ".join("-" * w for w in widths)]
    lines += [_fmt_row(row, widths) for row in rows]
    return "\n".join(lines)


def _no_rate_limit_args() -> list[str]:
    """`--rate-limit-* 0` for the serve flags this version of gatehouse has."""
    out = subprocess.run(
        [sys.executable, "-m", "gatehouse", "serve", "--help"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    ).stdout
    return [
        arg for flag in ("--rate-limit-identity", "--rate-limit-tenant") if flag in out for arg in (flag, "0")
    ]


def _loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def _uvicorn_stack() -> str:
    def have(mod: str) -> bool:
        try:
            __import__(mod)
        except ImportError:
            return False
        return True

    http = "httptools" if have("httptools") else "h11"
    loop = "uvloop" if have("uvloop") else "asyncio"
    return f"uvicorn http={http} loop={loop}"


# The shadow bundle of `--shadow`: the seed plus a rule that denies every benchmark submit, so
# each submit disagrees and writes a disagreement (the worst case for the shadow's cost).
SHADOW_RULE = 'rules:\n  - id: shadow-deny-bench\n    decision: deny\n    match: {topics: ["job.bench.**"]}\n'
SHADOW_TARGET = 1.20  # issue 22: a shadow bundle adds at most 20% to the submit p50


def shadow_phase(server: Server, submit: Route, rounds: int, slice_: float, opts: dict[str, Any]) -> str:
    """Submit without and with a shadow bundle, in alternating rounds of the same length; the
    p50 ratio, the shadow's disagreements counted by the server, and the target."""
    seed = (Path(__file__).resolve().parents[1] / "examples" / "policies" / "seed.yaml").read_text()
    bundle = seed.replace("rules:\n", SHADOW_RULE, 1)
    admin = {"X-API-Key": ADMIN_KEY}
    plain: list[Result] = []
    shadowed: list[Result] = []
    for _ in range(rounds):
        httpx.delete(server.url + "/api/v1/policy/shadow", headers=admin, timeout=30)
        plain.append(measure(submit, server, seconds=slice_, **opts))
        r = httpx.put(
            server.url + "/api/v1/policy/shadow", headers=admin, json={"bundle": bundle}, timeout=30
        )
        if r.status_code != 200:
            return f"shadow: could not install the shadow bundle ({r.status_code} {r.text[:200]})"
        shadowed.append(measure(submit, server, seconds=slice_, **opts))
    httpx.delete(server.url + "/api/v1/policy/shadow", headers=admin, timeout=30)
    a, b = merge(plain), merge(shadowed)
    ratio = b.p50_ms / a.p50_ms if a.p50_ms else 0.0
    seen = server.metric("gatehouse_shadow_disagreements_total", {})
    verdict = "met" if ratio <= SHADOW_TARGET else "NOT MET"
    return (
        f"shadow bundle (every submit disagrees, {seen:,.0f} disagreements recorded): submit p50 "
        f"{a.p50_ms:.2f} ms without, {b.p50_ms:.2f} ms with -> {ratio:.2f}x "
        f"(target <= {SHADOW_TARGET:.2f}x: {verdict}); throughput {a.rps:,.0f} -> {b.rps:,.0f} req/s"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=None, help="per phase (default 10; 3 quick)")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--jobs", type=int, default=None, help="end-to-end jobs (2,000; 300 quick)")
    ap.add_argument("--quick", action="store_true", help="short phases (CI smoke)")
    ap.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="alternate the trivial and submit routes this many times (default 3)",
    )
    ap.add_argument("--warmup", type=float, default=None, help="seconds (default 2; 1 quick)")
    ap.add_argument("--python-load", action="store_true", help="use the asyncio generator")
    ap.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="py-spy the server during the submit phase; write DIR/submit.folded",
    )
    ap.add_argument("--verbose", action="store_true", help="print wrk's own reports")
    ap.add_argument(
        "--shadow",
        action="store_true",
        help="also measure submit with a shadow bundle installed (rounds alternate without and with it)",
    )
    ap.add_argument(
        "--keep-rate-limits",
        action="store_true",
        help="keep the server's default rate limits (they are disabled otherwise)",
    )
    ap.add_argument(
        "--server-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for `gatehouse serve` (repeatable), e.g. --server-arg=--builtin-workers=4",
    )
    args = ap.parse_args(argv)
    seconds = args.seconds if args.seconds is not None else (3.0 if args.quick else 10.0)
    jobs = args.jobs if args.jobs is not None else (300 if args.quick else 2000)
    warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 2.0)
    conns = args.connections

    wrk = None if args.python_load else shutil.which("wrk")
    if wrk is not None:
        version = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
        first = (version.stdout or version.stderr).splitlines()[:1]
        generator = f"wrk ({wrk}; {first[0] if first else '?'}) -t1 -c{conns}"
    elif args.python_load:
        generator = f"python asyncio, {conns} keep-alive connections (--python-load)"
    else:
        generator = f"python asyncio, {conns} keep-alive connections (wrk not found)"

    server_args = list(args.server_arg)
    if not args.keep_rate_limits:
        # The benchmark measures capacity: the default per-identity and per-tenant token
        # buckets would answer 429 long before the server is saturated.
        server_args = [*_no_rate_limit_args(), *server_args]
    tmp = Path(tempfile.mkdtemp(prefix="gatehouse-bench-"))
    server = Server(data_dir=tmp / "data", log_path=tmp / "server.log", extra_args=server_args)
    broken: list[str] = []
    try:
        server.start()
        key = server.create_agent()
        print(
            f"gatehouse serve pid {server.pid} on {server.url} "
            f"(Python {platform.python_version()}, {_uvicorn_stack()}, {os.cpu_count()} CPUs)"
        )
        print(f"load generator: {generator}")
        print(f"phases: {seconds:g} s each after a {warmup:g} s warm-up; {jobs} end-to-end jobs")
        print(f"server arguments: {' '.join(server_args) or '(defaults)'}")
        print(f"load average before: {_loadavg()} (other work on the machine skews every figure)")
        print()

        whoami = Route(
            label="GET  /api/v1/whoami",
            method="GET",
            path="/api/v1/whoami",
            expect=200,
            headers={"X-API-Key": key},
        )
        submit = Route(
            label="POST /api/v1/jobs (submit)",
            method="POST",
            path="/api/v1/jobs",
            expect=201,
            headers={"X-API-Key": key, "Content-Type": "application/json"},
            body=submit_body("job.bench.submit"),
        )
        opts = dict(wrk=wrk, connections=conns, workdir=tmp, verbose=args.verbose)
        if warmup > 0:
            measure(whoami, server, seconds=warmup, **opts)  # type: ignore[arg-type]
        # The two routes alternate in short rounds: on a shared machine the CPU speed drifts by
        # tens of percent within seconds, and back-to-back long phases would compare two speeds.
        rounds = max(1, args.rounds)
        slice_ = seconds / rounds
        trivial_rounds: list[Result] = []
        submit_rounds: list[Result] = []
        allowed = {"decision": "allow"}
        before = server.metric("gatehouse_jobs_submitted_total", allowed)
        for _ in range(rounds):
            trivial_rounds.append(measure(whoami, server, seconds=slice_, **opts))  # type: ignore[arg-type]
            submit_rounds.append(measure(submit, server, seconds=slice_, **opts))  # type: ignore[arg-type]
        stored = int(server.metric("gatehouse_jobs_submitted_total", allowed) - before)
        trivial, sub = merge(trivial_rounds), merge(submit_rounds)
        with profiling(server.pid, args.profile, slice_) as raw:
            if raw is not None:  # an extra submit phase under py-spy, not counted above
                measure(submit, server, seconds=slice_, **opts)  # type: ignore[arg-type]
        if sub.errors:
            broken.append(f"{sub.errors} submit responses were not 201 or failed")

        shadow_line = None
        if args.shadow:
            shadow_line = shadow_phase(server, submit, rounds, slice_, opts)

        done = completion_phase(server, key, jobs, conns, timeout=max(60.0, jobs / 20))
        if done.succeeded < done.jobs or done.submit_errors:
            broken.append(
                f"end to end: {done.succeeded} of {done.jobs} jobs succeeded "
                f"({done.submit_errors} submit errors)"
            )

        print(table([trivial, sub]))
        print()
        if rounds > 1:
            per_round = "  ".join(
                f"{s.rps / t.rps:.2f}x" if t.rps else "-"
                for t, s in zip(trivial_rounds, submit_rounds, strict=True)
            )
            print(f"{rounds} alternating rounds of {slice_:g} s per route; submit/trivial: {per_round}")
        ratio = sub.rps / trivial.rps if trivial.rps else 0.0
        ok_ratio = ratio >= TARGET_RATIO
        ok_p99 = sub.p99_ms < TARGET_P99_MS
        print(
            f"submit / trivial GET throughput: {ratio:.2f}x  "
            f"(target >= {TARGET_RATIO:.2f}x: {'met' if ok_ratio else 'NOT MET'})"
        )
        print(
            f"submit p99 with {conns} in flight: {sub.p99_ms:.1f} ms  "
            f"(target < {TARGET_P99_MS:.0f} ms: {'met' if ok_p99 else 'NOT MET'})"
        )
        print(
            f"submit responses: {sub.requests:,} counted by the load generator, "
            f"{stored:,} jobs stored by the server (allow), {sub.errors} errors"
        )
        print(
            f"end to end: {done.jobs:,} job.demo.echo jobs submitted in "
            f"{done.submit_seconds:.2f} s, "
            f"{done.succeeded:,} succeeded after {done.total_seconds:.2f} s "
            f"-> {done.rate:,.0f} jobs/s completed"
        )
        if shadow_line is not None:
            print(shadow_line)
        print(f"load average after: {_loadavg()}")
        print(
            "server CPU: the server process's CPU time over the phase (100% = one core); "
            "CPU us/req: that time per request;\nno-CPU wait: time its threads were ready "
            "to run but had no CPU (other load on the machine; should be near 0%)"
        )
        if raw is not None:
            print()
            print(f"py-spy profile of the server during the submit phase ({raw}):")
            print(summarise_profile(raw))
    except Exception as exc:
        print(f"error: {exc}", file=sys.stderr)
        tail = server.log_tail()
        if tail:
            print(f"--- server log ({server.log_path}) ---\n{tail}", file=sys.stderr)
        return 1
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    for b in broken:
        print(f"error: {b}", file=sys.stderr)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())

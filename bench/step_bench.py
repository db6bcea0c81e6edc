"""How the cost of one step decision grows with the number of step rules, and what
`from_untrusted` costs over a session holding 1 MiB of untrusted output.

    python bench/step_bench.py            # 10, 100, 1,000 and 10,000 step rules
    python bench/step_bench.py --quick    # up to 1,000 rules

For each size a seeded generator writes a bundle of step rules (targets over
`adapter:svcNNN:<action>`, ten rules per adapter, a few `adapter:svcNNN:*` and `adapter:**`
wildcards; argument conditions: `gt` on an amount, `in_set` / `not_in_set` over named sets,
`domain_in` over a recipient, `matches` (RE2) on a body, `each` over a list of recipients,
`session_count`) and 1,000 tool calls from the same adapters (a fifth aimed at a rule, the rest
near misses). Each call is timed (`time.perf_counter_ns`, best p50 of 3 blocks after a warm-up)
through `Policy.decide` (the compiled index) and `Policy.scan` (the linear scan, the baseline
measured in the same run); every call's two answers must agree, or the script exits 1.

Provenance: a session whose untrusted outputs total 1 MiB (256 outputs of 4 KiB of wordy text
with e-mail addresses, IBANs and URLs) is indexed once; then `from_untrusted` is asked of 1,000
values (a quarter present in the text) and timed per call, against a baseline that searches the
raw text for each value with a whole-token regex (what an unindexed check would do).

Over HTTP (`--http`, or `--http-only`): a real `gatehouse serve` on `examples/policies/steps.yaml`
(bench/service_bench.py's server and load generator: wrk when installed, else asyncio), 64
connections, alternating rounds of the trivial authenticated `GET /api/v1/whoami` (the baseline)
and `POST /api/v1/steps/evaluate`: a mail step with a subject and a 200-character body, a unique
step id per request, spread over 256 sessions opened first (so each session gathers a realistic
history of tens of steps, not one session of thousands). Every answer must be 200 `allow`.

`--postgres` runs the HTTP measurement with the server on PostgreSQL (a server of its own, started
by the script with tests/services.py as bench/scale_bench.py does; PostgreSQL must be installed):
the same routes, for what a replica on a shared database answers.

Targets (issue 15): decide p50 <= 10 us at 10,000 step rules, p50(10,000) / p50(10) <= 3;
`from_untrusted` p50 <= 1 ms at 1 MiB; evaluate over HTTP >= 0.6x the trivial route's throughput
with p99 < 50 ms at 64 in flight. This prints figures; it exits 0 whether or not they are met
(1 only when the run itself is broken).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gatehouse.policy import Policy, Provenance, load
from gatehouse.policy.text import provenance_text

FULL_SIZES = (10, 100, 1_000, 10_000)
QUICK_SIZES = (10, 100, 1_000)
ACTIONS = ("send", "pay", "read", "delete", "list", "get", "put", "post", "sync", "drop")
DOMAINS = ("corp.com", "partner.io", "evil.example", "mail.corp.com", "other.net")


def _rule(rng: random.Random, i: int, adapters: int) -> dict[str, Any]:
    svc = f"svc{i // 10 % adapters:04d}"
    roll = rng.random()
    target = f"adapter:{svc}:{ACTIONS[i % 10]}"
    if roll < 0.05:
        target = f"adapter:{svc}:*"
    kind = i % 7
    cond: Any
    if kind == 0:
        cond = {"gt": {"params.amount": rng.choice([100, 1000, 5000])}}
    elif kind == 1:
        cond = {"not_in_set": {"params.to": "payees"}}
    elif kind == 2:
        cond = {"not_domain_in": {"params.to": ["company_domains"]}}
    elif kind == 3:
        cond = {"matches": {"params.body": rng.choice(["(?i)password", "rm\\s+-rf", "https?://"])}}
    elif kind == 4:
        known = [{"in_set": {"$": "contacts"}}, {"domain_in": {"$": ["company_domains"]}}]
        cond = {"each": {"field": "params.cc", "any": known}}
    elif kind == 5:
        cond = {"session_count": {"targets": [f"adapter:{svc}:*"], "gt": rng.choice([2, 5])}}
    else:
        cond = {"eq": {"params.currency": rng.choice(["EUR", "USD"])}}
    return {
        "id": f"s{i:05d}",
        "target": target,
        "action": rng.choice(["deny", "require_approval", "allow"]),
        "condition": [cond, {"exists": "params.to"}] if rng.random() < 0.3 else cond,
    }


def make_bundle(n: int, seed: int) -> tuple[str, int]:
    rng = random.Random(seed)
    adapters = max(1, n // 10)
    rules = [_rule(rng, i, adapters) for i in range(n)]
    rules.append(
        {
            "id": "global",
            "target": "adapter:**",
            "action": "deny",
            "condition": {"gt": {"params.amount": 10**6}},
        }
    )
    sets = {
        "payees": [f"DE{rng.randrange(10**18):018d}" for _ in range(200)],
        "contacts": [f"user{k}@corp.com" for k in range(200)],
        "company_domains": ["corp.com", "partner.io"],
    }
    bundle = {"version": 1, "default_decision": "allow", "sets": sets, "rules": rules}
    return json.dumps(bundle), adapters


def make_calls(n_calls: int, adapters: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed + 1)
    calls = []
    for _ in range(n_calls):
        svc = f"svc{rng.randrange(adapters):04d}"
        action = rng.choice(ACTIONS)
        params: dict[str, Any] = {
            "amount": rng.choice([5, 150, 2000, "7000.00"]),
            "to": rng.choice([f"user{rng.randrange(300)}@{rng.choice(DOMAINS)}", "DE000000000000000001"]),
            "currency": rng.choice(["eur", "USD", "GBP"]),
            "body": rng.choice(["hello", "my Password is x", "see https://x.io", "rm -rf /"]),
            "cc": [f"user{rng.randrange(300)}@{rng.choice(DOMAINS)}" for _ in range(rng.randrange(3))],
        }
        history = [f"adapter:{svc}:{rng.choice(ACTIONS)}" for _ in range(rng.randrange(8))]
        calls.append(
            {
                "target": f"adapter:{svc}:{action}",
                "adapter": svc,
                "action": action,
                "params": params,
                "session": {"allowed_targets": history, "step_count": len(history)},
            }
        )
    return calls


def time_calls(fn: Callable[[Any], Any], args: Sequence[Any], blocks: int = 3) -> tuple[float, float]:
    """(p50, p99) in microseconds: the best block's."""
    for a in args:  # warm-up
        fn(a)
    best: tuple[float, float] | None = None
    clock = time.perf_counter_ns
    for _ in range(blocks):
        ns = []
        for a in args:
            t0 = clock()
            fn(a)
            ns.append(clock() - t0)
        ns.sort()
        row = (statistics.median(ns) / 1000, ns[int(len(ns) * 0.99)] / 1000)
        if best is None or row[0] < best[0]:
            best = row
    assert best is not None
    return best


def bench_rules(sizes: Sequence[int], seed: int) -> tuple[dict[int, float], bool]:
    print(f"step decisions: 1,000 tool calls per size, seed {seed}, python {sys.version.split()[0]}")
    print(" rules |  load ms | decide p50 us   p99 us | scan p50 us    p99 us | speed-up")
    print("-" * 76)
    p50s: dict[int, float] = {}
    ok = True
    for n in sizes:
        text, adapters = make_bundle(n, seed)
        t0 = time.perf_counter()
        policy: Policy = load(text)
        load_ms = (time.perf_counter() - t0) * 1000
        calls = make_calls(1000, adapters, seed)
        for c in calls:
            if policy.decide(c) != policy.scan(c):
                print(f"MISMATCH at {n} rules: {c}")
                ok = False
                break
        d50, d99 = time_calls(policy.decide, calls)
        s50, s99 = time_calls(policy.scan, calls, blocks=1 if n >= 10_000 else 3)
        p50s[n] = d50
        print(
            f"{n:6,} | {load_ms:8.1f} | {d50:13.2f} {d99:8.2f} | {s50:11.2f} {s99:9.2f} | {s50 / d50:7.1f}x"
        )
    lo, hi = min(p50s), max(p50s)
    print(f"p50({hi:,})/p50({lo:,}) = {p50s[hi]:.2f} us / {p50s[lo]:.2f} us = {p50s[hi] / p50s[lo]:.2f}")
    return p50s, ok


_WORDS = ("invoice", "payment", "transfer", "the", "account", "please", "urgent", "review", "ok")


def untrusted_corpus(seed: int, total: int = 1 << 20, chunk: int = 4096) -> list[str]:
    rng = random.Random(seed + 2)
    out = []
    size = 0
    while size < total:
        parts: list[str] = []
        n = 0
        while n < chunk:
            r = rng.random()
            if r < 0.05:
                w = f"user{rng.randrange(10**6)}@host{rng.randrange(1000)}.example"
            elif r < 0.08:
                w = f"DE{rng.randrange(10**18):018d}"
            elif r < 0.10:
                w = f"https://site{rng.randrange(1000)}.example/p/{rng.randrange(10**6)}"
            else:
                w = rng.choice(_WORDS)
            parts.append(w)
            n += len(w) + 1
        text = " ".join(parts)[: min(chunk, total - size)]
        out.append(text)
        size += len(text)
    return out


def bench_provenance(seed: int) -> None:
    corpus = untrusted_corpus(seed)
    t0 = time.perf_counter()
    prov = Provenance.start(trusted=["pay the invoice from my inbox"])
    for text in corpus:
        prov = prov.with_untrusted(text)
    index_ms = (time.perf_counter() - t0) * 1000
    rng = random.Random(seed + 3)
    tokens = [t for text in corpus for t in text.split(" ") if "@" in t or t.startswith("DE")]
    values: list[str] = []
    for k in range(1000):
        if k % 4 == 0:
            values.append(rng.choice(tokens).upper())
        else:
            values.append(f"stranger{rng.randrange(10**6)}@elsewhere.example")
    flat = [provenance_text(t) for t in corpus]

    def baseline(value: str) -> bool:
        rx = re.compile(r"(?<![^\W_])" + re.escape(provenance_text(value)) + r"(?![^\W_])")
        return any(rx.search(t) for t in flat)

    for v in values[:50]:
        assert prov.from_untrusted(v) == baseline(v), v
    p50, p99 = time_calls(prov.from_untrusted, values)
    b50, b99 = time_calls(baseline, values[:200], blocks=1)
    size = sum(len(t) for t in corpus)
    print()
    print(
        f"from_untrusted over {size / (1 << 20):.2f} MiB in {len(corpus)} outputs "
        f"(indexed in {index_ms:.0f} ms): p50 {p50:.2f} us, p99 {p99:.2f} us"
    )
    print(
        f"baseline (whole-token regex over the raw text): p50 {b50:.0f} us, p99 {b99:.0f} us; "
        f"{b50 / p50:.0f}x"
    )
    print(f"target p50 <= 1,000 us: {'met' if p50 <= 1000 else 'NOT met'}")


HTTP_SESSIONS = 256
HTTP_TARGET_RATIO = 0.6
HTTP_TARGET_P99_MS = 50.0


def bench_http(
    seconds: float, rounds: int, connections: int, profile: Any = None, store: str | None = None
) -> bool:
    """The evaluate route against the trivial authenticated route, in alternating rounds
    (`store`: a database URL for the server, else its SQLite file)."""
    import shutil
    import tempfile

    import httpx

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import service_bench as sb

    root = Path(__file__).resolve().parent.parent
    tmp = Path(tempfile.mkdtemp(prefix="gatehouse-stepbench-"))
    server = sb.Server(
        data_dir=tmp / "data",
        log_path=tmp / "server.log",
        extra_args=[*sb._no_rate_limit_args(), *(["--store", store] if store else [])],
        policy=root / "examples" / "policies" / "steps.yaml",
    )
    wrk = shutil.which("wrk")
    try:
        server.start()
        admin = {"X-API-Key": sb.ADMIN_KEY}
        made = httpx.post(
            server.url + "/api/v1/identities",
            json={**sb.AGENT, "name": "step-bench-agent", "adapters": ["*"]},
            headers=admin,
            timeout=10,
        )
        made.raise_for_status()
        key = made.json()["api_key"]
        with httpx.Client(base_url=server.url, headers={"X-API-Key": key}, timeout=10) as c:
            for k in range(HTTP_SESSIONS):
                r = c.post("/api/v1/sessions", json={"session_id": f"bench-s{k}", "task": "weekly report"})
                r.raise_for_status()
        text = "the weekly numbers are attached; revenue grew in every region and churn fell. " * 3
        body = {
            "session_id": "bench-s@S@",
            "step_id": "step-@N@",
            "adapter": "mail",
            "action": "send",
            "params": {"to": "ops@example.com", "subject": "weekly report", "body": text[:200]},
        }
        headers = {"X-API-Key": key, "Content-Type": "application/json"}
        whoami = sb.Route("GET  /api/v1/whoami", "GET", "/api/v1/whoami", 200, {"X-API-Key": key})
        evaluate = sb.Route(
            "POST /api/v1/steps/evaluate",
            "POST",
            "/api/v1/steps/evaluate",
            200,
            headers,
            json.dumps(body, separators=(",", ":")).encode(),
            unique=True,
            spread=HTTP_SESSIONS,
        )
        opts: dict[str, Any] = dict(wrk=wrk, connections=connections, workdir=tmp, verbose=False)
        sb.measure(whoami, server, seconds=1.0, **opts)
        allowed = {"decision": "allow"}
        before = server.metric("gatehouse_step_decisions_total", allowed)
        trivial, steps = [], []
        for n in range(rounds):
            # The load generators number requests from 1 on every run: a run token keeps the step
            # ids of one round from replaying (cheaply) the steps of the one before.
            token = f"r{n}-@N@".encode()
            fresh = dataclasses.replace(evaluate, body=evaluate.body.replace(b"step-@N@", token))
            trivial.append(sb.measure(whoami, server, seconds=seconds / rounds, **opts))
            steps.append(sb.measure(fresh, server, seconds=seconds / rounds, **opts))
        stored = int(server.metric("gatehouse_step_decisions_total", allowed) - before)
        t, s = sb.merge(trivial), sb.merge(steps)
        with sb.profiling(server.pid, profile, seconds / rounds) as raw:
            if raw is not None:  # an extra evaluate phase under py-spy, not counted above
                profiled = evaluate.body.replace(b"step-@N@", b"prof-@N@")
                once = dataclasses.replace(evaluate, body=profiled)
                sb.measure(once, server, seconds=seconds / rounds, **opts)
        print()
        print(f"over HTTP ({'wrk -t1' if wrk else 'python asyncio'}, {connections} connections, "
              f"{rounds} alternating rounds of {seconds / rounds:g} s, "
              f"store {'PostgreSQL' if store else 'SQLite'}):")  # fmt: skip
        print(sb.table([t, s]))
        ratio = s.rps / t.rps if t.rps else 0.0
        print(
            f"evaluate / trivial GET throughput: {ratio:.2f}x "
            f"(target >= {HTTP_TARGET_RATIO:.1f}x: {'met' if ratio >= HTTP_TARGET_RATIO else 'NOT met'}); "
            f"evaluate p99 {s.p99_ms:.1f} ms "
            f"(target < {HTTP_TARGET_P99_MS:.0f} ms: {'met' if s.p99_ms < HTTP_TARGET_P99_MS else 'NOT met'})"
        )
        print(f"evaluate answers: {s.requests:,} counted, {stored:,} allow decisions, {s.errors} errors")
        if raw is not None:
            print(sb.summarise_profile(raw))
        return s.errors == 0 and stored >= s.requests
    except Exception as exc:
        print(f"error: {exc}\n{server.log_tail()}", file=sys.stderr)
        return False
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _on_postgres(args: argparse.Namespace) -> bool:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    import services

    pg = services.PostgresServer.start_new()
    try:
        return bench_http(args.seconds, args.rounds, args.connections, args.profile, store=pg.new_database())
    finally:
        pg.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="sizes up to 1,000 rules")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--http", action="store_true", help="also measure the evaluate route over HTTP")
    parser.add_argument("--http-only", action="store_true", help="only the HTTP measurement")
    parser.add_argument("--seconds", type=float, default=12.0, help="HTTP: seconds per route (all rounds)")
    parser.add_argument("--rounds", type=int, default=3, help="HTTP: alternating rounds")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--profile", type=Path, default=None, metavar="DIR", help="HTTP: py-spy the server")
    parser.add_argument("--postgres", action="store_true", help="HTTP: the server on PostgreSQL")
    args = parser.parse_args(argv)
    if args.postgres:
        return 0 if _on_postgres(args) else 1
    if args.http_only:
        return 0 if bench_http(args.seconds, args.rounds, args.connections, args.profile) else 1
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    p50s, ok = bench_rules(sizes, args.seed)
    if 10_000 in p50s:
        ratio = p50s[10_000] / p50s[10]
        print(
            f"targets: p50 at 10,000 <= 10 us: {'met' if p50s[10_000] <= 10 else 'NOT met'}; "
            f"growth <= 3x: {'met' if ratio <= 3 else 'NOT met'}"
        )
    bench_provenance(args.seed)
    if args.http and not bench_http(args.seconds, args.rounds, args.connections, args.profile):
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

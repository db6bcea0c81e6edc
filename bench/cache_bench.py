"""The decision cache: the hit path and the miss path of `Kernel.decide`, in microseconds.

    python bench/cache_bench.py

Same run, same 1,000-rule bundle (generated like `policy_bench.py`): the engine alone
(`Policy.decide`), the kernel with every request a cache miss (distinct contexts, cache cleared),
and the kernel answering from the cache (the same contexts again; prompts differ, which the key
ignores). Kernel figures include its metrics, so they are what a gate pays.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from policy_bench import make_bundle, make_jobs

from gatehouse.kernel import Kernel
from gatehouse.metrics import Metrics
from gatehouse.policy import load


def timed(fn, items) -> list[float]:
    out = []
    for item in items:
        t = time.perf_counter_ns()
        fn(item)
        out.append((time.perf_counter_ns() - t) / 1000)
    return out


def main() -> int:
    text, rules = make_bundle(1_000, 7)
    policy = load(text)
    jobs = make_jobs(rules, 1_000, 7)
    kernel = Kernel(metrics=Metrics())
    kernel.install(policy)
    rows = []
    rows.append(("engine alone (Policy.decide)", timed(policy.decide, jobs)))
    miss = []
    for _ in range(3):
        kernel.cache.clear()
        miss += timed(lambda c: kernel.decide_now(c, stage="submit"), jobs)
    rows.append(("kernel, cache miss", miss))
    hit = []
    for _ in range(3):
        hit += timed(lambda c: kernel.decide_now({**c, "prompt": "x"}, stage="submit"), jobs)
    rows.append(("kernel, cache hit", hit))
    print(
        f"1,000 rules, {len(jobs)} distinct contexts; hits={kernel.cache.hits} misses={kernel.cache.misses}"
    )
    print(f"{'path':<32} {'p50 us':>8} {'p99 us':>8}")
    for name, xs in rows:
        xs.sort()
        print(f"{name:<32} {statistics.median(xs):>8.2f} {xs[int(len(xs) * 0.99)]:>8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

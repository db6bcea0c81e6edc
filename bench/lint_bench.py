"""How long `gatehouse policy lint` takes as a bundle grows, and how many pairs it compares.

    python bench/lint_bench.py            # 100, 1,000 and 10,000 rules
    python bench/lint_bench.py --quick    # 100 and 1,000 rules (CI smoke)

The bundles are `policy_bench.py`'s (seeded: exact topics and globs over a topic space that grows
with the bundle, labels, capabilities, risk tags, conditions, one rule in 200 without a topic).
For each size it loads the bundle, then times `lint` (best of three runs), and prints the
findings by kind and how many candidate pairs the trie handed over against the n*(n-1)/2 a blind
pairwise scan would compare. Target (issue 22): 10,000 rules in under 10 s. Exits 0 whatever
the figures: a benchmark that prints, not a test.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from policy_bench import make_bundle

from gatehouse.policy import lint as lint_module
from gatehouse.policy import load

TARGET_S = 10.0


def run(n_rules: int, seed: int) -> tuple[float, float, int, Counter[str]]:
    text, _ = make_bundle(n_rules, seed)
    policy = load(text)
    pairs = 0
    original = lint_module._candidate_pairs

    def counted(*args: object, **kw: object) -> object:
        nonlocal pairs
        for pair in original(*args, **kw):  # type: ignore[arg-type]
            pairs += 1
            yield pair

    best = float("inf")
    findings = []
    for attempt in range(3):
        lint_module._candidate_pairs = counted if attempt == 0 else original  # type: ignore[assignment]
        started = time.perf_counter()
        findings = lint_module.lint(policy)
        best = min(best, time.perf_counter() - started)
    lint_module._candidate_pairs = original  # type: ignore[assignment]
    blind = n_rules * (n_rules - 1) / 2
    return best, (pairs / blind if blind else 0.0), pairs, Counter(f.kind for f in findings)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="up to 1,000 rules")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    sizes = (100, 1_000) if args.quick else (100, 1_000, 10_000)
    print(f"{'rules':>7} | {'lint s':>7} | {'pairs compared':>14} | {'of blind':>8} | findings")
    worst = 0.0
    for n in sizes:
        seconds, share, pairs, kinds = run(n, args.seed)
        worst = seconds if n == sizes[-1] else worst
        shown = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) or "none"
        print(f"{n:>7,} | {seconds:>7.2f} | {pairs:>14,} | {share:>7.1%} | {shown}")
    verdict = "met" if worst < TARGET_S else "NOT met"
    print(f"target: {sizes[-1]:,} rules in < {TARGET_S:g} s: {verdict} ({worst:.2f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

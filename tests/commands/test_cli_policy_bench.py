"""`bench/policy_bench.py --quick` runs, agrees with the reference scan, and prints its table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_policy_bench_quick_smoke() -> None:
    r = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "policy_bench.py"), "--quick"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=20,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    header = next(line for line in lines if line.lstrip().startswith("rules |"))
    assert "decide p50 us" in header and "scan p50 us" in header and "speed-up" in header
    sizes = [line.split("|")[0].strip() for line in lines if line.count("|") == 5][1:]
    assert sizes == ["0", "10", "100", "1,000"]
    assert "decide and scan agree on all 1,000 jobs at every size" in r.stdout


def test_lint_bench_quick_smoke() -> None:
    r = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "lint_bench.py"), "--quick"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    rows = [line.split("|") for line in r.stdout.splitlines() if line.count("|") == 4][1:]
    assert [row[0].strip() for row in rows] == ["100", "1,000"]
    # The trie hands over a small share of the blind n*(n-1)/2 pairs.
    assert float(rows[-1][3].strip().rstrip("%")) < 10.0

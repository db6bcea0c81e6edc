"""The output detectors against a labelled corpus: recall and false positives per detector, the
secrets that leak past the output gate, and what the gate costs on a typical result.

    python bench/detectors_bench.py            # tables
    python bench/detectors_bench.py --misses   # and the name of every miss and false positive

The corpus (`bench/detectors_corpus.py`) holds secrets in the shapes and evasions of the
adversarial probe and non-secrets that look close (UUIDs, SHAs, base64 images, order numbers,
prose about passwords). A secret *leaks* when one of its needles is visible to the submitter
(the stored result and error) or in the reviewer's preview, under two policies: the seed's
output rules, and one that names every detector (keys quarantined, PII redacted).

The bench also runs against an older tree (`PYTHONPATH=/tmp/old python bench/...`): a gate
without the `error` parameter is measured as it behaved then, the error shown verbatim and the
quarantine preview visible to the submitter.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from detectors_corpus import CASES, NON_SECRETS, PROBE, SECRETS, Case

from gatehouse.output import ALL_DETECTORS, decide, scan
from gatehouse.policy import OutputRule, load

ROOT = Path(__file__).resolve().parent.parent
NAMES = [d.name for d in ALL_DETECTORS]
KEYS = (
    "private_key",
    "aws_access_key",
    "aws_secret_key",
    "github_token",
    "slack_token",
    "jwt",
    "generic_api_key",
    "password",
)
SEED = load((ROOT / "examples" / "policies" / "seed.yaml").read_text()).output_rules
ALL_RULES = (
    OutputRule(id="quarantine-keys", detectors=tuple(n for n in NAMES if n in KEYS), decision="quarantine"),
    OutputRule(id="redact-pii", detectors=tuple(n for n in NAMES if n not in KEYS), decision="redact"),
)
NEW_API = "error" in inspect.signature(decide).parameters


def findings(case: Case, detector: str) -> bool:
    if NEW_API:
        found, _ = scan(case.output, [detector], error=case.error)  # type: ignore[call-arg]
    else:
        found, _ = scan(case.output, [detector])
    return bool(found)


def visible(case: Case, rules: Any) -> str:
    """What the submitter sees and what the reviewer's preview shows, as one JSON text."""
    if NEW_API:
        v = decide(case.output, rules, topic="job.bench", error=case.error)  # type: ignore[call-arg]
        error = v.redacted_error  # type: ignore[attr-defined]
        if v.decision == "quarantine":
            shown: Any = {"preview": v.redacted, "preview_error": error}
        else:
            shown = {"result": v.redacted, "error": error}
    else:
        v = decide(case.output, rules, topic="job.bench")
        # Before: the error was stored verbatim and the preview sat in the job for every reader.
        shown = {"result_or_preview": v.redacted, "error": case.error}
    return json.dumps(shown, ensure_ascii=False)


def leaked(case: Case, rules: Any) -> bool:
    text = visible(case, rules)
    return any(n in text for n in case.needles)


def typical_result() -> dict[str, Any]:
    """A 2 KB worker result: prose, a file list, numbers, a nested object, one e-mail address."""
    prose = (
        "Ran the nightly report for the eu-west region. 1,204 rows were exported to the warehouse "
        "and 3 were skipped because their customer id was empty. The export took 41.2 seconds; the "
        "slowest query was the join on orders (12.7 s). Next run is scheduled for 02:00 UTC. "
    )
    return {
        "stdout": prose * 5,
        "files": [f"/var/data/exports/2024-01-{d:02d}/orders-{d}.csv" for d in range(1, 11)],
        "rows": [{"id": 1000 + i, "sku": f"SKU-{i:05d}", "qty": i % 7, "price": 19.99 + i} for i in range(8)],
        "summary": {"ok": True, "exit_code": 0, "owner": "ops-team@example.com", "took_ms": 41200},
    }


def timing(rules: Any, batches: int = 25, n: int = 20) -> float:
    """µs of CPU per judgement: the best of `batches` batches of `n`, on the thread's CPU clock
    (the bench shares its cores; wall time would measure the neighbours)."""
    output = typical_result()
    kwargs: dict[str, Any] = {"error": None} if NEW_API else {}
    decide(output, rules, topic="job.bench", **kwargs)
    best = float("inf")
    for _ in range(batches):
        t = time.thread_time()
        for _ in range(n):
            decide(output, rules, topic="job.bench", **kwargs)
        best = min(best, (time.thread_time() - t) / n)
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--misses", action="store_true", help="name every miss and false positive")
    args = parser.parse_args()

    print(f"corpus: {len(SECRETS)} secrets ({len(PROBE)} from the probe), {len(NON_SECRETS)} non-secrets")
    print(
        f"gate API: {'whole result (output, error, keys, numbers)' if NEW_API else 'output strings only'}\n"
    )

    print(f"{'detector':<16} {'secrets':>7} {'recall':>7} {'FP':>10} {'FP share':>8}")
    total_fp: set[str] = set()
    for name in NAMES:
        own = [c for c in SECRETS if name in c.detectors]
        hit = [c for c in own if findings(c, name)]
        fps = [c for c in NON_SECRETS if findings(c, name)]
        total_fp.update(c.name for c in fps)
        recall = f"{len(hit) / len(own):.0%}" if own else "-"
        print(
            f"{name:<16} {len(own):>7} {recall:>7} {len(fps):>4}/{len(NON_SECRETS):<5}"
            f" {len(fps) / len(NON_SECRETS):>8.1%}"
        )
        if args.misses:
            for c in own:
                if c not in hit:
                    print(f"    miss: {c.name}")
            for c in fps:
                print(f"    false positive: {c.name}")
    print(f"non-secrets flagged by any detector: {len(total_fp)}/{len(NON_SECRETS)}\n")

    print(f"{'policy':<22} {'probe leaked':>13} {'all leaked':>11} {'non-secrets held/changed':>25}")
    for label, rules in (("seed", SEED), ("all detectors", ALL_RULES)):
        probe_leaks = [c for c in PROBE if leaked(c, rules)]
        all_leaks = [c for c in SECRETS if leaked(c, rules)]
        touched = [c for c in NON_SECRETS if _touched(c, rules)]
        print(
            f"{label:<22} {len(probe_leaks):>6}/{len(PROBE):<6} {len(all_leaks):>4}/{len(SECRETS):<6}"
            f" {len(touched):>12}/{len(NON_SECRETS)}"
        )
        if args.misses:
            for c in all_leaks:
                print(f"    leaked: {c.name}")
            for c in touched:
                print(f"    non-secret held or changed: {c.name}")

    size = len(json.dumps(typical_result()))
    print(f"\noutput judge on a typical {size}-byte result (CPU time, best batch):")
    for label, rules in (("seed", SEED), ("all detectors", ALL_RULES)):
        print(f"  {label:<16} {timing(rules):8.1f} µs")
    assert len(CASES) == len(SECRETS) + len(NON_SECRETS)


def _touched(case: Case, rules: Any) -> bool:
    kwargs: dict[str, Any] = {"error": case.error} if NEW_API else {}
    return decide(case.output, rules, topic="job.bench", **kwargs).decision != "allow"


if __name__ == "__main__":
    main()

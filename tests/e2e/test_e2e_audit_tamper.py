"""The probe's audit tamper cases (F3), replayed against real servers by `bench/tamper_bench.py`:
every case a signature can catch is caught without a witness, and every case with one, after a
clean stop and after kill -9 under write load."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from harness import ROOT

sys.path.insert(0, str(ROOT / "bench"))

import tamper_bench


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> list[tamper_bench.Result]:
    work = tmp_path_factory.mktemp("tamper")
    bases = tamper_bench.prepare(work, jobs=30, layout="keys-dir")
    return tamper_bench.run_cases(bases, "keys-dir")


def test_the_probe_has_its_24_cases_in_both_states(results) -> None:
    assert len(tamper_bench.CASES) == 24 and tamper_bench.AUDIT_CASES == 21
    assert {r.state for r in results} == {"clean", "kill9"} and len(results) == 48


def test_every_case_a_signature_can_catch_is_caught_without_a_witness(results) -> None:
    missed = [(r.state, r.name) for r in results if r.catchable and not r.without]
    assert missed == []
    # After a clean stop only the rollback is beyond a signature (with the key kept outside).
    clean = {r.name for r in results if r.state == "clean" and not r.catchable}
    assert clean == {"roll back to an earlier root (tail, checkpoints, roots)"}


def test_every_case_is_caught_with_a_witness(results) -> None:
    assert [(r.state, r.name) for r in results if not r.with_witness] == []


def test_verify_cli_takes_the_witness_and_the_keys_dir(tmp_path: Path) -> None:
    bases = tamper_bench.prepare(tmp_path, jobs=3, layout="keys-dir")
    base = bases["clean"]
    data, keys, witness = base / "data", base / "keys", base / "witness" / "audit.jsonl"
    assert not (data / "keys" / "server.key").exists()  # the key is not next to the database

    def verify(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gatehouse", "audit", "verify", "--data-dir", str(data), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )

    ok = verify("--keys-dir", str(keys), "--witness", str(witness))
    assert ok.returncode == 0, ok.stdout
    assert "ok   (roots)" in ok.stdout and "ok   (witness)" in ok.stdout and "ok   (rows)" in ok.stdout
    # Roll the log back to an earlier consistent state: only the witness remembers.
    import sqlite3

    db = sqlite3.connect(data / "gatehouse.db")
    tamper_bench._rollback(db)
    db.execute("DELETE FROM jobs")
    db.execute("DELETE FROM decisions")
    db.commit()
    db.close()
    bad = verify("--keys-dir", str(keys), "--witness", str(witness))
    assert bad.returncode == 1 and "BAD  (witness)" in bad.stdout, bad.stdout

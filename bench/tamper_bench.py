"""The adversarial probe's audit tamper cases, replayed: detected / total.

    python bench/tamper_bench.py [--jobs 150] [--layout keys-dir|data-dir] [--json FILE]

Starts `gatehouse serve` on the seed policy with `--audit-witness` (a file outside the data
directory) and, by default, `--keys-dir` outside it too (the recommended layout; `--layout
data-dir` keeps the key next to the database, as the probe found it). Writes jobs in two tenants
(allowed, denied, dispatched and finished), then leaves the data directory in two states:

- `clean stop`: SIGTERM, the server seals and signs a final root;
- `kill -9`: SIGKILL just after three clients stop submitting (an unsigned tail exists, no
  shutdown seal).

For each state, each of the 24 cases below is applied to a fresh copy of the data directory
(21 on the audit tables, 3 on the job and decision tables, reconstructed from the probe's
report), then `audit verify --data-dir` runs in-process, once without and once with the
witness. A case is *detected* when verify reports any problem; the untampered copy must verify
clean, or the figures mean nothing (exit 1).

Each case also says whether a signature can catch it at all without a witness (`sig?`): a
rollback to an earlier consistent state never can; a change to the tail written after the last
sealing (kill -9) cannot; a re-signing with a key found in the data directory cannot. Those are
what the witness is for.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from gatehouse.audit.chain import GENESIS, entry_hash
from gatehouse.commands.audit import verify_data_dir
from gatehouse.crypto import SigningKey, VerifyKey

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "examples" / "policies" / "seed.yaml"
ADMIN = "ghk_bench_admin_key_0123456789"
A, B = "tenant:acme", "tenant:globex"


# ------------------------------------------------------------------------------- the server
def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Run:
    data: Path
    keys: Path
    witness: Path
    proc: subprocess.Popen[bytes] | None = None
    url: str = ""

    def start(self) -> None:
        port = _port()
        self.url = f"http://127.0.0.1:{port}"
        args = [
            sys.executable,
            "-m",
            "gatehouse",
            "serve",
            "--port",
            str(port),
            "--metrics-port",
            str(_port()),
            "--data-dir",
            str(self.data),
            "--policy",
            str(SEED),
            "--audit-witness",
            str(self.witness),
            "--rate-limit-identity",
            "0",
            "--rate-limit-tenant",
            "0",
            "--log-level",
            "warning",
        ]
        if self.keys != self.data / "keys":
            args += ["--keys-dir", str(self.keys)]
        log = open(self.data.parent / f"server-{port}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "GATEHOUSE_ADMIN_KEY": ADMIN}
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("server did not start")

    def client(self, key: str = ADMIN) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"X-API-Key": key}, timeout=30)


def _workload(run: Run, jobs: int) -> dict[str, str]:
    keys = {}
    with run.client() as admin:
        for tenant in ("acme", "globex"):
            r = admin.post(
                "/api/v1/identities",
                json={"name": f"agent-{tenant}", "tenant": tenant, "roles": ["agent"]},
            )
            assert r.status_code == 201, r.text
            keys[tenant] = r.json()["api_key"]
    for tenant, key in keys.items():
        with run.client(key) as c:
            for n in range(jobs):
                if n % 5 == 4:  # denied by the seed policy: a decision row with no job
                    c.post("/api/v1/jobs", json={"topic": "job.exec.shell", "prompt": "rm -rf /"})
                else:
                    c.post("/api/v1/jobs", json={"topic": "job.demo.read", "prompt": f"{tenant} {n}"})
    time.sleep(1.0)  # the built-in workers finish the demo jobs
    return keys


def prepare(workdir: Path, *, jobs: int, layout: str) -> dict[str, Path]:
    """Two data directories (clean stop, kill -9) with their witness files."""
    out = {}
    for state in ("clean", "kill9"):
        base = workdir / state
        data = base / "data"
        keys = base / "keys" if layout == "keys-dir" else data / "keys"
        run = Run(data=data, keys=keys, witness=base / "witness" / "audit.jsonl")
        data.parent.mkdir(parents=True, exist_ok=True)
        run.start()
        assert run.proc is not None
        agent_keys = _workload(run, jobs)
        if state == "clean":
            run.proc.send_signal(signal.SIGTERM)
            run.proc.wait(30)
        else:
            stop = threading.Event()

            def load(key: str, run: Run = run, stop: threading.Event = stop) -> None:
                with run.client(key) as c:
                    n = 0
                    while not stop.is_set():
                        n += 1
                        try:
                            c.post("/api/v1/jobs", json={"topic": "job.other.load", "prompt": str(n)})
                        except httpx.HTTPError:
                            return

            threads = [threading.Thread(target=load, args=(k,)) for k in (*agent_keys.values(), ADMIN)]
            for t in threads:
                t.start()
            time.sleep(1.5)
            # Let the clients' last answers arrive before the kill: an entry is committed, then
            # written to the witness, then answered. A SIGKILL between the first two would leave
            # a committed entry the witness never saw, which verify (rightly) reports; the
            # untampered baseline must verify. The tail is still unsigned: sealing runs every 2 s
            # and no shutdown seal happens.
            stop.set()
            for t in threads:
                t.join(10)
            time.sleep(0.2)
            run.proc.send_signal(signal.SIGKILL)
            run.proc.wait()
        out[state] = base
    return out


# --------------------------------------------------------------------- the attacker's tools
def _entries(db: sqlite3.Connection, stream: str) -> list[list[Any]]:
    return [
        list(r)
        for r in db.execute(
            "SELECT id, stream, seq, ts, type, actor, request_id, data, prev_hash, hash FROM audit "
            "WHERE stream = ? ORDER BY seq",
            (stream,),
        )
    ]


def _rechain(db: sqlite3.Connection, stream: str, renumber: bool = False) -> None:
    """Recompute every hash (and seq, when renumbering) of a stream, as a forger would."""
    prev = GENESIS
    rows = _entries(db, stream)
    db.execute("UPDATE audit SET seq = -seq - 1000000 WHERE stream = ?", (stream,))
    for n, r in enumerate(rows, 1):
        seq = n if renumber else r[2]
        fields = {
            "stream": stream,
            "seq": seq,
            "ts": r[3],
            "type": r[4],
            "actor": r[5],
            "request_id": r[6],
            "data": json.loads(r[7]),
            "prev_hash": prev,
        }
        h = entry_hash(fields)
        db.execute("UPDATE audit SET seq = ?, prev_hash = ?, hash = ? WHERE id = ?", (seq, prev, h, r[0]))
        prev = h


def _last_seq(db: sqlite3.Connection, stream: str) -> int:
    return int(db.execute("SELECT MAX(seq) FROM audit WHERE stream = ?", (stream,)).fetchone()[0])


def _edit(db: sqlite3.Connection, stream: str, seq: int) -> None:
    db.execute(
        "UPDATE audit SET data = json_set(data, '$.tampered', 1) WHERE stream = ? AND seq = ?", (stream, seq)
    )


def _append_forged(db: sqlite3.Connection, stream: str) -> None:
    head = _entries(db, stream)[-1]
    fields = {
        "stream": stream,
        "seq": head[2] + 1,
        "ts": head[3] + 0.001,
        "type": "decision",
        "actor": head[5],
        "request_id": None,
        "data": {"result": "allow", "rule_id": "default", "job_id": "job-forged"},
        "prev_hash": head[9],
    }
    db.execute(
        "INSERT INTO audit (stream, seq, ts, type, actor, request_id, data, prev_hash, hash) "
        "VALUES (?,?,?,?,?,?,?,?,?)",
        (
            stream,
            fields["seq"],
            fields["ts"],
            "decision",
            head[5],
            None,
            json.dumps(fields["data"]),
            head[9],
            entry_hash(fields),
        ),
    )


def _resign(db: sqlite3.Connection, key: SigningKey) -> None:
    """Re-sign every checkpoint against the (forged) entries, and write one fresh root: what
    someone holding a signing key can do."""
    from gatehouse.audit.chain import sign_checkpoint, sign_root

    heads: dict[str, dict[str, Any]] = {}
    for (stream,) in db.execute("SELECT DISTINCT stream FROM audit_checkpoints").fetchall():
        hashes = {r[2]: r[9] for r in _entries(db, stream)}
        prev = GENESIS
        for cid, seq, time_ in db.execute(
            "SELECT id, seq, time FROM audit_checkpoints WHERE stream = ? ORDER BY id", (stream,)
        ).fetchall():
            if seq not in hashes:
                db.execute("DELETE FROM audit_checkpoints WHERE id = ?", (cid,))
                continue
            cp = sign_checkpoint(key, stream, seq, hashes[seq], time_, prev)
            db.execute(
                "UPDATE audit_checkpoints SET hash = ?, key_id = ?, sig = ?, prev = ? WHERE id = ?",
                (cp.hash, cp.key_id, cp.sig, cp.prev, cid),
            )
            prev = cp.digest
            heads[stream] = {"seq": cp.seq, "hash": cp.hash, "checkpoint": cp.digest}
    db.execute("DELETE FROM audit_roots")
    root = sign_root(key, 1, time.time(), GENESIS, heads, final=True)
    db.execute(
        "INSERT INTO audit_roots (seq, time, prev, heads, key_id, sig, final) VALUES (?,?,?,?,?,?,1)",
        (root.seq, root.time, root.prev, json.dumps(heads), root.key_id, root.sig),
    )


def _attacker_key(data: Path) -> SigningKey:
    """The key an attacker with the data directory holds: the server's, if it sits there."""
    path = data / "keys" / "server.key"
    return SigningKey.load(path) if path.exists() else SigningKey.generate()


def _rollback(db: sqlite3.Connection) -> None:
    """Back to the second-to-last root: its entries, checkpoints and roots, nothing after."""
    roots = db.execute("SELECT seq, heads FROM audit_roots ORDER BY seq").fetchall()
    keep_seq, heads = roots[-2] if len(roots) > 1 else roots[0]
    heads = json.loads(heads)
    for stream, head in heads.items():
        db.execute("DELETE FROM audit WHERE stream = ? AND seq > ?", (stream, head["seq"]))
        db.execute("DELETE FROM audit_checkpoints WHERE stream = ? AND seq > ?", (stream, head["seq"]))
    for (stream,) in db.execute("SELECT DISTINCT stream FROM audit").fetchall():
        if stream not in heads:
            db.execute("DELETE FROM audit WHERE stream = ?", (stream,))
            db.execute("DELETE FROM audit_checkpoints WHERE stream = ?", (stream,))
    db.execute("DELETE FROM audit_roots WHERE seq > ?", (keep_seq,))


def _signed_to(db: sqlite3.Connection, stream: str) -> int:
    """How far the newest root vouches for `stream`."""
    row = db.execute("SELECT heads FROM audit_roots ORDER BY seq DESC LIMIT 1").fetchone()
    head = json.loads(row[0]).get(stream) if row else None
    return int(head["seq"]) if head else 0


def _final(db: sqlite3.Connection) -> bool:
    row = db.execute("SELECT final FROM audit_roots ORDER BY seq DESC LIMIT 1").fetchone()
    return bool(row and row[0])


def _deny_to_allow(db: sqlite3.Connection) -> None:
    db.execute(
        "UPDATE decisions SET result = 'allow', rule_id = 'default' WHERE seq = "
        "(SELECT MIN(seq) FROM decisions WHERE result = 'deny')"
    )


# ------------------------------------------------------------------------------------ cases
# (name, tamper(db, data_dir), catchable without a witness(db before tampering, layout))
Tamper = Callable[[sqlite3.Connection, Path], None]
Catchable = Callable[[sqlite3.Connection, str], bool]
ALWAYS: Catchable = lambda db, layout: True  # noqa: E731


def _tail_catchable(n: int) -> Catchable:
    return lambda db, layout: _last_seq(db, A) - n + 1 <= _signed_to(db, A)


def _mid(db: sqlite3.Connection) -> int:
    return _last_seq(db, A) // 2


def _sql(statement: str, *args: Any) -> Tamper:
    """A tamper that is one statement; `args` may be callables of the db (evaluated first)."""

    def run(db: sqlite3.Connection, data: Path) -> None:
        db.execute(statement, [a(db) if callable(a) else a for a in args])

    return run


def _steps(*steps: Tamper) -> Tamper:
    def run(db: sqlite3.Connection, data: Path) -> None:
        for step in steps:
            step(db, data)

    return run


def _edit_mid(db: sqlite3.Connection, data: Path) -> None:
    _edit(db, A, _mid(db))


def _edit_last(db: sqlite3.Connection, data: Path) -> None:
    _edit(db, A, _last_seq(db, A))


def _edit_tail(db: sqlite3.Connection, data: Path) -> None:
    _edit(db, A, _last_seq(db, A) - 3)


def _rechain_a(db: sqlite3.Connection, data: Path) -> None:
    _rechain(db, A)


def _renumber_a(db: sqlite3.Connection, data: Path) -> None:
    _rechain(db, A, renumber=True)


def _swap(db: sqlite3.Connection, data: Path) -> None:
    mid = _mid(db)
    db.execute("UPDATE audit SET seq = -1 WHERE stream = ? AND seq = ?", (A, mid))
    db.execute("UPDATE audit SET seq = ? WHERE stream = ? AND seq = ?", (mid, A, mid + 1))
    db.execute("UPDATE audit SET seq = ? WHERE stream = ? AND seq = -1", (mid + 1, A))


def _move(db: sqlite3.Connection, data: Path) -> None:
    db.execute(
        "UPDATE audit SET stream = ?, seq = ? WHERE stream = ? AND seq = ?",
        (B, _last_seq(db, B) + 1, A, _mid(db)),
    )


def _insert_forged(db: sqlite3.Connection, data: Path) -> None:
    mid = _mid(db)
    db.execute("UPDATE audit SET seq = seq + 1000000 WHERE stream = ? AND seq > ?", (A, mid))
    db.execute(
        "INSERT INTO audit (stream, seq, ts, type, actor, request_id, data, prev_hash, hash) "
        "SELECT stream, seq + 1, ts, type, actor, request_id, json_set(data, '$.forged', 1), prev_hash, hash "
        "FROM audit WHERE stream = ? AND seq = ?",
        (A, mid),
    )
    db.execute("UPDATE audit SET seq = seq - 1000000 + 1 WHERE stream = ? AND seq > 1000000", (A,))
    _rechain(db, A)


def _forged_append(db: sqlite3.Connection, data: Path) -> None:
    _append_forged(db, A)


def _resign_with_found_key(db: sqlite3.Connection, data: Path) -> None:
    _resign(db, _attacker_key(data))


def _roll_back(db: sqlite3.Connection, data: Path) -> None:
    _rollback(db)


def _decision_allow(db: sqlite3.Connection, data: Path) -> None:
    _deny_to_allow(db)


def _final_root(db: sqlite3.Connection, layout: str) -> bool:
    return _final(db)


def _key_outside(db: sqlite3.Connection, layout: str) -> bool:
    return layout == "keys-dir"


def _never(db: sqlite3.Connection, layout: str) -> bool:
    return False


_MID = _mid
_LAST = lambda db: _last_seq(db, A)  # noqa: E731
_LAST10 = lambda db: _last_seq(db, A) - 10  # noqa: E731

CASES: list[tuple[str, Tamper, Catchable]] = [
    ("edit an entry (middle)", _edit_mid, ALWAYS),
    ("edit the last entry", _edit_last, ALWAYS),
    ("delete an entry (middle)", _sql("DELETE FROM audit WHERE stream = ? AND seq = ?", A, _MID), ALWAYS),
    (
        "delete the last entry",
        _sql("DELETE FROM audit WHERE stream = ? AND seq = ?", A, _LAST),
        _tail_catchable(1),
    ),
    (
        "delete the last 10 entries",
        _sql("DELETE FROM audit WHERE stream = ? AND seq > ?", A, _LAST10),
        _tail_catchable(10),
    ),
    ("reorder two entries", _swap, ALWAYS),
    ("move an entry to another stream", _move, ALWAYS),
    (
        "edit the ts of an entry",
        _sql("UPDATE audit SET ts = ts + 1 WHERE stream = ? AND seq = ?", A, _MID),
        ALWAYS,
    ),
    ("edit + re-chain from the middle", _steps(_edit_mid, _rechain_a), ALWAYS),
    ("edit + re-chain the tail", _steps(_edit_tail, _rechain_a), _tail_catchable(4)),
    (
        "delete + renumber + re-chain",
        _steps(_sql("DELETE FROM audit WHERE stream = ? AND seq = ?", A, _MID), _renumber_a),
        ALWAYS,
    ),
    ("append a forged, correctly hashed entry", _forged_append, _final_root),
    ("insert a forged entry + re-chain", _insert_forged, ALWAYS),
    (
        "forge a checkpoint signature",
        _sql(
            "UPDATE audit_checkpoints SET sig = 'AAAA' "
            "WHERE id = (SELECT MAX(id) FROM audit_checkpoints WHERE stream = ?)",
            A,
        ),
        ALWAYS,
    ),
    (
        "delete all checkpoints + edit + re-chain",
        _steps(_sql("DELETE FROM audit_checkpoints"), _edit_mid, _rechain_a),
        ALWAYS,
    ),
    (
        "delete all checkpoints and roots + edit + re-chain",
        _steps(_sql("DELETE FROM audit_checkpoints"), _sql("DELETE FROM audit_roots"), _edit_mid, _rechain_a),
        ALWAYS,
    ),
    ("delete one stream's checkpoints", _sql("DELETE FROM audit_checkpoints WHERE stream = ?", A), ALWAYS),
    ("delete a whole stream (checkpoints kept)", _sql("DELETE FROM audit WHERE stream = ?", B), ALWAYS),
    (
        "delete a whole stream and its checkpoints",
        _steps(
            _sql("DELETE FROM audit WHERE stream = ?", B),
            _sql("DELETE FROM audit_checkpoints WHERE stream = ?", B),
        ),
        ALWAYS,
    ),
    (
        "edit + re-chain + re-sign with the data-dir key",
        _steps(_edit_mid, _rechain_a, _resign_with_found_key),
        _key_outside,
    ),
    ("roll back to an earlier root (tail, checkpoints, roots)", _roll_back, _never),
    # the job and decision tables
    ("decision row: deny -> allow", _decision_allow, ALWAYS),
    (
        "job row: status and result edited",
        _sql(
            "UPDATE jobs SET status = 'succeeded', result = '\"ok\"' WHERE seq = (SELECT MIN(seq) FROM jobs)"
        ),
        ALWAYS,
    ),
    (
        "job row deleted",
        _sql("DELETE FROM jobs WHERE seq = (SELECT MAX(seq) FROM jobs WHERE status = 'succeeded')"),
        ALWAYS,
    ),
]
AUDIT_CASES = 21


# ----------------------------------------------------------------------------------- verify
def _keys(base: Path, layout: str) -> dict[str, VerifyKey]:
    pub = (base / "keys" if layout == "keys-dir" else base / "data" / "keys") / "server.pub"
    k = VerifyKey.load(pub)
    return {k.key_id: k}


def _verify(data: Path, keys: dict[str, VerifyKey], witness: Path | None) -> list[str]:
    reports = asyncio.run(verify_data_dir(data, keys, witness=str(witness) if witness else None))
    return [f"{r.stream}: {r.reason}" for r in reports if not r.ok]


def _copy(base: Path, to: Path) -> Path:
    if to.exists():
        shutil.rmtree(to)
    shutil.copytree(base / "data", to, ignore=shutil.ignore_patterns("keys"))
    if (base / "data" / "keys").exists():
        shutil.copytree(base / "data" / "keys", to / "keys")
    return to


@dataclass
class Result:
    name: str
    state: str
    catchable: bool
    without: bool
    with_witness: bool
    why: str


def run_cases(bases: dict[str, Path], layout: str) -> list[Result]:
    results = []
    for state, base in bases.items():
        keys = _keys(base, layout)
        witness = base / "witness" / "audit.jsonl"
        scratch = base.parent / f"scratch-{state}"
        clean = _copy(base, scratch)
        for w in (None, witness):
            problems = _verify(clean, keys, w)
            if problems:
                raise SystemExit(f"the untampered {state} copy does not verify (witness={w}): {problems}")
        for name, tamper, catchable in CASES:
            data = _copy(base, scratch)
            db = sqlite3.connect(data / "gatehouse.db")
            can = catchable(db, layout)
            tamper(db, data)
            db.commit()
            db.close()
            without = _verify(data, keys, None)
            with_w = _verify(data, keys, witness)
            results.append(
                Result(name, state, can, bool(without), bool(with_w), (without or with_w or ["-"])[0])
            )
    return results


def table(results: list[Result]) -> str:
    states = ("clean", "kill9")
    lines = [f"{'case':58} " + " ".join(f"{s + ' sig?/no w/w':>20}" for s in states)]
    names = list(dict.fromkeys(r.name for r in results))
    mark = {True: "yes", False: "NO"}
    for name in names:
        row = []
        for s in states:
            r = next(x for x in results if x.name == name and x.state == s)
            row.append(f"{('sig' if r.catchable else '-'):>6} {mark[r.without]:>6} {mark[r.with_witness]:>6}")
        lines.append(f"{name:58} " + " ".join(f"{c:>20}" for c in row))
    lines.append("")
    for s in states:
        rs = [r for r in results if r.state == s]
        audit, other = rs[:AUDIT_CASES], rs[AUDIT_CASES:]
        for label, group in (("audit tables", audit), ("job/decision tables", other)):
            lines.append(
                f"{s:6} {label:20} without witness {sum(r.without for r in group)}/{len(group)} "
                f"(signature-catchable {sum(r.without for r in group if r.catchable)}/"
                f"{sum(r.catchable for r in group)}), "
                f"with witness {sum(r.with_witness for r in group)}/{len(group)}"
            )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=150, help="jobs per tenant before the stop")
    ap.add_argument("--layout", choices=("keys-dir", "data-dir"), default="keys-dir")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gatehouse-tamper-"))
    try:
        bases = prepare(work, jobs=args.jobs, layout=args.layout)
        results = run_cases(bases, args.layout)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(
        f"layout: {args.layout}; {args.jobs} jobs per tenant; cases: {len(CASES)} ({AUDIT_CASES} audit-table)"
    )
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in results], indent=1))


if __name__ == "__main__":
    main()

"""Scale-out end to end: `gatehouse serve` replicas on one PostgreSQL and one nats-server, all
real processes (`tests/services.py` starts the servers, `harness.Server` the replicas).

Jobs submitted through two replicas at once are each dispatched once; an approval given on one
replica releases its job once however many workers on either replica reach for it; a policy
installed through one replica is enforced by the other within a second; roles split the API
from the scheduler; the database going away makes `/readyz` say so until it is back; an approved
tool call sent to two replicas at once runs once.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import services
from broker_target import Target
from harness import ADMIN_KEY, ROOT, SEED, Server, free_port

DEMO = {"topic": "job.demo.read", "prompt": "status", "meta": {"capability": "infra.read"}}
PROD = {"topic": "job.deploy.apply", "prompt": "terraform apply", "labels": {"env": "prod"},
        "meta": {"capability": "infra.write"}}  # fmt: skip

Start = Callable[..., Server]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Start]:
    """Start replicas on one fresh database, one nats-server and one shared keys directory."""
    url = services.postgres().new_database()
    common = ["--store", url, "--bus", services.nats().url, "--keys-dir", str(tmp_path / "keys")]
    started: list[Server] = []

    def start(name: str, *args: str, store: str | None = None, policy: Path = SEED) -> Server:
        extra = [*common, *args]
        if store is not None:
            extra[1] = store
        s = Server(data_dir=tmp_path / name, policy=policy, extra_args=extra)
        started.append(s)
        return s.start()

    yield start
    for s in started:
        s.stop()


def _submit(s: Server, key: str, body: dict) -> httpx.Response:
    with s.client(key) as c:
        return c.post("/api/v1/jobs", json=body)


def _wait_all(s: Server, job_ids: list[str], statuses: set[str], timeout: float = 30.0) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    seen: dict[str, str] = {}
    with s.admin() as c:
        while time.monotonic() < deadline:
            seen = {j: c.get(f"/api/v1/jobs/{j}").json()["status"] for j in job_ids}
            if all(v in statuses for v in seen.values()):
                break
            time.sleep(0.2)
    return seen


def _audit_ok(s: Server) -> None:
    with s.admin() as c:
        report = c.get("/api/v1/audit/verify").json()
    assert report["ok"], [r for r in report["streams"] if not r.get("ok")]


def test_jobs_submitted_through_two_replicas_are_each_dispatched_once(cluster: Start) -> None:
    a = cluster("a")
    b = cluster("b")
    agent = a.identity("agent", roles=["agent"], topics=["job.**"], capabilities=["infra.read"])
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: _submit((a, b)[i % 2], agent["api_key"], DEMO), range(40)))
    assert [r.status_code for r in answers] == [201] * 40, [r.text for r in answers if r.status_code != 201]
    job_ids = [r.json()["job_id"] for r in answers]
    done = _wait_all(b, job_ids, {"succeeded"})
    assert set(done.values()) == {"succeeded"}, done
    with a.admin() as c:
        for job_id in job_ids:
            stages = [d["stage"] for d in c.get(f"/api/v1/jobs/{job_id}/decisions").json()["decisions"]]
            assert stages.count("dispatch") == 1, (job_id, stages)
        listed = c.get("/api/v1/jobs", params={"limit": 100}).json()["jobs"]
    assert sorted(j["job_id"] for j in listed) == sorted(job_ids)  # every 201 is stored, once
    _audit_ok(b)


def test_an_approval_releases_its_job_once_across_replicas(cluster: Start) -> None:
    a = cluster("a", "--builtin-workers", "0")
    b = cluster("b", "--builtin-workers", "0")
    agent = a.identity("deployer", roles=["agent"], topics=["job.**"], capabilities=["infra.write"])
    approver = a.identity("alice", roles=["approver"])
    worker = a.identity("deploy-worker", roles=["worker"], topics=["job.deploy.**"])
    r = _submit(a, agent["api_key"], PROD)
    assert r.status_code == 201 and r.json()["status"] == "pending_approval", r.text
    job_id = r.json()["job_id"]
    with b.client(approver["api_key"]) as c:  # approved on the other replica
        assert c.post(f"/api/v1/approvals/{job_id}/approve", json={"comment": "CHG-1"}).status_code == 200

    def lease(s: Server) -> list[str]:
        with s.client(worker["api_key"]) as w:
            got = w.post("/api/v1/worker/lease", json={"topics": ["job.deploy.**"], "max_jobs": 5})
            assert got.status_code == 200, got.text
            return [j["job_id"] for j in got.json()["jobs"]]

    with ThreadPoolExecutor(6) as pool:
        leased = [j for got in pool.map(lease, [a, b] * 3) for j in got]
    assert leased == [job_id]  # one worker on one replica got it, once
    with a.admin() as c:
        assert c.get(f"/api/v1/jobs/{job_id}").json()["status"] == "dispatched"
    with a.client(approver["api_key"]) as c:
        r = c.get("/api/v1/approvals", params={"status": "consumed"})
        assert r.status_code == 200, r.text
    assert [x["job_id"] for x in r.json()["approvals"]] == [job_id]
    _audit_ok(a)


def test_a_policy_installed_on_one_replica_is_enforced_by_the_other_within_a_second(cluster: Start) -> None:
    a = cluster("a", "--builtin-workers", "0")
    b = cluster("b", "--builtin-workers", "0")
    agent = a.identity("agent", roles=["agent"], topics=["job.**"], capabilities=["infra.read"])
    blocked = {**DEMO, "topic": "job.demo.blocked"}
    assert _submit(b, agent["api_key"], blocked).status_code == 201
    bundle = SEED.read_text().replace(
        "rules:\n",
        "rules:\n  - id: deny-demo-blocked\n    decision: deny\n    reason: blocked everywhere\n"
        '    match: {topics: ["job.demo.blocked"]}\n',
        1,
    )
    with a.admin() as c:
        r = c.put("/api/v1/policy", json={"bundle": bundle})
        assert r.status_code == 200, r.text
        snapshot = r.json()["policy_snapshot"]
    installed = time.monotonic()
    while True:
        r = _submit(b, agent["api_key"], blocked)
        if r.status_code == 403:
            break
        assert time.monotonic() - installed < 1.0, "replica b still allows what replica a's policy denies"
        time.sleep(0.02)
    assert r.json()["error"]["details"]["decision"]["rule_id"] == "deny-demo-blocked"
    assert httpx.get(b.url + "/readyz").json()["policy_snapshot"] == snapshot


def test_roles_split_the_api_from_the_scheduler(cluster: Start) -> None:
    api = cluster("api", "--role", "api")
    scheduler = cluster("scheduler", "--role", "scheduler")
    agent = api.identity("agent", roles=["agent"], topics=["job.**"], capabilities=["infra.read"])
    # The scheduler replica serves health and metrics, and says where the API is.
    assert httpx.get(scheduler.url + "/readyz").status_code == 200
    with scheduler.admin() as c:
        r = c.get("/api/v1/jobs")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_served"
    # A job submitted to the API replica (which runs no workers) is done by the scheduler's.
    r = _submit(api, agent["api_key"], DEMO)
    assert r.status_code == 201, r.text
    job = api.wait_status(r.json()["job_id"], {"succeeded", "failed"}, timeout=15)
    assert job["status"] == "succeeded", job


def test_a_database_down_at_start_is_a_clear_refusal(tmp_path: Path) -> None:
    url = f"postgresql://gatehouse:hunter2@127.0.0.1:{free_port()}/gatehouse"
    done = subprocess.run(
        [sys.executable, "-m", "gatehouse", "serve", "--store", url, "--data-dir", str(tmp_path / "d"),
         "--port", str(free_port()), "--metrics-port", "0"],
        capture_output=True, text=True, cwd=ROOT, timeout=60, env={"GATEHOUSE_ADMIN_KEY": ADMIN_KEY,
                                                                    "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode != 0
    assert (
        "gatehouse: cannot start: cannot reach the database at postgresql://gatehouse:***@127.0.0.1"
        in done.stderr
    )
    assert "hunter2" not in done.stderr


def test_readyz_follows_the_database_and_recovers_without_a_restart(tmp_path: Path) -> None:
    own = services.PostgresServer.start_new()  # a server of its own: this test stops it
    try:
        s = Server(data_dir=tmp_path / "r", policy=SEED, extra_args=["--store", own.new_database()]).start()
        try:
            agent = s.identity("agent", roles=["agent"], topics=["job.**"], capabilities=["infra.read"])
            assert httpx.get(s.url + "/readyz").status_code == 200
            own.kill()
            down = httpx.get(s.url + "/readyz", timeout=5)
            assert down.status_code == 503 and down.json()["status"] == "backend_unavailable"
            r = _submit(s, agent["api_key"], DEMO)  # refused as unavailable, never a 500
            assert r.status_code == 503 and r.json()["error"]["code"] == "store_unavailable", r.text
            own.restart()
            deadline = time.monotonic() + 15
            while httpx.get(s.url + "/readyz", timeout=5).status_code != 200:
                assert time.monotonic() < deadline, "the replica did not recover"
                time.sleep(0.2)
            assert _submit(s, agent["api_key"], DEMO).status_code == 201
        finally:
            s.stop()
    finally:
        own.stop()


def test_a_replica_killed_mid_load_loses_no_acknowledged_job(cluster: Start) -> None:
    a = cluster("a")
    b = cluster("b")
    agent = a.identity("agent", roles=["agent"], topics=["job.**"], capabilities=["infra.read"])

    def submit(i: int) -> httpx.Response | None:
        if i == 30:
            a.kill9()  # in the middle of the load, with requests in flight on it
        try:
            return _submit((a, b)[i % 2], agent["api_key"], {**DEMO, "prompt": f"status {i}"})
        except httpx.HTTPError:
            return None  # no answer: the client does not know, and must not count it

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(submit, range(60)))
    acknowledged = [r.json()["job_id"] for r in answers if r is not None and r.status_code == 201]
    assert len(acknowledged) >= 30
    with b.admin() as c:
        for job_id in acknowledged:
            r = c.get(f"/api/v1/jobs/{job_id}")
            assert r.status_code == 200, job_id  # every 201 is stored
            stages = [d["stage"] for d in c.get(f"/api/v1/jobs/{job_id}/decisions").json()["decisions"]]
            assert stages.count("dispatch") <= 1, (job_id, stages)  # never handed out twice
    # B's workers finish what B dispatched; the jobs A's workers held wait for their lease.
    done = _wait_all(b, acknowledged, {"succeeded", "dispatched", "running"})
    assert set(done.values()) <= {"succeeded", "dispatched", "running"}, done
    _audit_ok(b)


def test_the_bus_down_mid_run_work_goes_on_by_polling_and_broadcasts_catch_up(tmp_path: Path) -> None:
    """nats-server killed under two API replicas and a scheduler: jobs submitted to either API
    replica are still dispatched and done by the scheduler's workers (they poll the store), a
    policy installed through one replica meanwhile is enforced by the other within the sync
    interval, and when the bus is back every replica is ready again without a restart."""
    bus = services.NatsServer(folder=tmp_path / "nats", port=free_port())
    (tmp_path / "nats").mkdir()
    bus.start()
    common = ["--store", services.postgres().new_database(), "--bus", bus.url,
              "--keys-dir", str(tmp_path / "keys")]  # fmt: skip
    started: list[Server] = []
    try:
        for name, role in (("a", "api"), ("b", "api"), ("s", "scheduler")):
            started.append(Server(tmp_path / name, SEED, extra_args=[*common, "--role", role]).start())
        a, b, _ = started
        agent = a.identity("agent", roles=["agent"], topics=["job.**"], capabilities=["infra.read"])
        blocked = {**DEMO, "topic": "job.demo.blocked"}
        assert _submit(b, agent["api_key"], blocked).status_code == 201

        bus.kill()
        for s in started:  # each replica notices and says so
            deadline = time.monotonic() + 10
            while httpx.get(s.url + "/readyz", timeout=5).status_code != 503:
                assert time.monotonic() < deadline, f"{s.url} still ready with the bus down"
                time.sleep(0.1)
            assert httpx.get(s.url + "/readyz", timeout=5).json()["status"] == "backend_unavailable"

        # Work goes on: submits are acknowledged and the scheduler's workers find them by polling.
        t0 = time.monotonic()
        answers = [
            _submit((a, b)[i % 2], agent["api_key"], {**DEMO, "prompt": f"status {i}"}) for i in range(6)
        ]
        submit_seconds = (time.monotonic() - t0) / len(answers)
        assert [r.status_code for r in answers] == [201] * 6, [r.text for r in answers]
        done = _wait_all(a, [r.json()["job_id"] for r in answers], {"succeeded"})
        assert set(done.values()) == {"succeeded"}, done
        # No submit waits out the bus's publish timeout (2 s) while it is down.
        assert submit_seconds < 1.5, f"a submit took {submit_seconds:.1f} s with the bus down"

        # A policy installed through a while the broadcast cannot go out: b enforces it anyway.
        bundle = SEED.read_text().replace(
            "rules:\n",
            "rules:\n  - id: deny-demo-blocked\n    decision: deny\n    reason: blocked everywhere\n"
            '    match: {topics: ["job.demo.blocked"]}\n',
            1,
        )
        with a.admin() as c:
            r = c.put("/api/v1/policy", json={"bundle": bundle})
            assert r.status_code == 200, r.text
        installed = time.monotonic()
        while (r := _submit(b, agent["api_key"], blocked)).status_code != 403:
            # the sync interval (1 s) plus slack for a loaded machine
            assert time.monotonic() - installed < 5.0, "replica b never picked up a's policy"
            time.sleep(0.1)
        assert r.json()["error"]["details"]["decision"]["rule_id"] == "deny-demo-blocked"

        # The bus returns: every replica reconnects by itself and is ready again.
        bus.start()
        for s in started:
            deadline = time.monotonic() + 20
            while httpx.get(s.url + "/readyz", timeout=5).status_code != 200:
                assert time.monotonic() < deadline, f"{s.url} did not reconnect to the bus"
                time.sleep(0.2)
        r = _submit(b, agent["api_key"], DEMO)
        assert r.status_code == 201, r.text
        assert b.wait_status(r.json()["job_id"], {"succeeded", "failed"}, timeout=15)["status"] == "succeeded"
        _audit_ok(a)
    finally:
        for s in started:
            s.stop()
        bus.stop()


def _sql(url: str, query: str) -> list[tuple]:
    import asyncio

    import asyncpg

    async def run() -> list[tuple]:
        conn = await asyncpg.connect(url)
        try:
            return [tuple(r) for r in await conn.fetch(query)]
        finally:
            await conn.close()

    return asyncio.run(run())


def test_connections_dropped_mid_transaction_leave_no_half_written_job(tmp_path: Path) -> None:
    """The replica's database connections terminated (`pg_terminate_backend`) again and again
    during a burst of submits: each submit is acknowledged (201) or refused as unavailable (503,
    never a 500); every acknowledged job is stored whole, and no job row exists without its
    submit decision record (nor an allowed submit record without its job)."""
    url = services.postgres().new_database()
    database = url.rsplit("/", 1)[1]
    admin = services.postgres().admin_url
    s = Server(tmp_path / "a", SEED, extra_args=["--store", url, "--builtin-workers", "0"]).start()
    try:
        agent = s.identity("agent", roles=["agent"], topics=["job.**"], capabilities=["infra.read"])
        stop = False
        killed: list[int] = []

        def kill_backends() -> None:
            while not stop:
                rows = _sql(
                    admin,
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    f"WHERE datname = '{database}' AND pid <> pg_backend_pid()",
                )
                killed.append(sum(1 for (ok,) in rows if ok))
                time.sleep(0.05)

        with ThreadPoolExecutor(9) as pool:
            killer = pool.submit(kill_backends)
            answers = list(
                pool.map(
                    lambda i: _submit(s, agent["api_key"], {**DEMO, "prompt": f"status {i}"}), range(120)
                )
            )
            stop = True
            killer.result()
        assert sum(killed) > 0, "no connection was terminated during the burst"
        codes = {r.status_code for r in answers}
        assert codes <= {201, 503}, s.log()[-6000:]
        assert all(r.json()["error"]["code"] == "store_unavailable" for r in answers if r.status_code == 503)
        acknowledged = [r.json()["job_id"] for r in answers if r.status_code == 201]
        assert acknowledged, "every submit failed: the replica never recovered between terminations"
        with s.admin() as c:
            for job_id in acknowledged:
                r = c.get(f"/api/v1/jobs/{job_id}")
                assert r.status_code == 200 and r.json()["status"] == "queued", (job_id, r.text)
                stages = [d["stage"] for d in c.get(f"/api/v1/jobs/{job_id}/decisions").json()["decisions"]]
                assert stages == ["submit"], (job_id, stages)
        orphans = _sql(
            url,
            "SELECT id FROM jobs j WHERE NOT EXISTS "
            "(SELECT 1 FROM decisions d WHERE d.job_id = j.id AND d.stage = 'submit')",
        )
        assert orphans == [], f"jobs stored without their decision record: {orphans}"
        lost = _sql(
            url,
            "SELECT decision_id FROM decisions d WHERE d.stage = 'submit' AND d.result = 'allow' "
            "AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = d.job_id)",
        )
        assert lost == [], f"allowed submit records without their job: {lost}"
        _audit_ok(s)
    finally:
        s.stop()


def test_an_approved_tool_call_sent_to_two_replicas_runs_once(cluster: Start, tmp_path: Path) -> None:
    target = Target(secret="unused").start(free_port())
    try:
        here = f"http://127.0.0.1:{target.port}"
        bundle = tmp_path / "broker.yaml"
        bundle.write_text(
            "version: 1\nname: pay-once\ndefault_decision: deny\n"
            f'adapters:\n  svc:\n    kind: http\n    base_url: {here}\n    egress: ["{here}"]\n'
            "    actions:\n      pay: {method: GET, path: /slow, effect: write}\n"
            "rules:\n  - id: approve-writes\n    decision: require_approval\n    reason: a payment\n"
            '    match: {targets: ["adapter:svc:pay"]}\n'
        )
        a = cluster("a", policy=bundle)
        b = cluster("b", policy=bundle)
        agent = a.identity("payer", roles=["agent"], adapters=["svc:*"])["api_key"]
        approver = a.identity("alice", roles=["approver"])["api_key"]
        body = {"step_id": "pay-1", "params": {}}
        with a.client(agent) as c:
            r = c.post("/api/v1/adapters/svc/pay", json=body)
        assert r.status_code == 202, r.text
        body["session_id"] = r.json()["session_id"]
        with b.client(approver) as c:
            assert c.post(f"/api/v1/approvals/{r.json()['approval_id']}/approve").status_code == 200

        def pay(s: Server) -> httpx.Response:
            with s.client(agent) as c:
                return c.post("/api/v1/adapters/svc/pay", json=body, timeout=30)

        # The target takes 5 s to answer: both replicas hold the approved step at the same time.
        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(pay, [a, b]))
        assert sorted(r.status_code for r in answers) == [200, 409], [r.text for r in answers]
        refused = next(r for r in answers if r.status_code == 409)
        assert refused.json()["error"]["code"] in ("step_in_progress", "step_executed"), refused.text
        assert [x["raw_path"] for x in target.requests] == ["/slow"]  # one payment
    finally:
        target.stop()

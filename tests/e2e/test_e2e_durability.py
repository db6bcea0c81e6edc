"""A job acknowledged with 201 survives `kill -9`; the queue resumes after restart."""

from __future__ import annotations

import threading
import time

import httpx
from harness import ADMIN_KEY


def test_acknowledged_jobs_survive_kill_9(server_factory, tmp_path) -> None:
    data = tmp_path / "durable"
    s = server_factory(None, data_dir=data)
    with s.admin() as admin:
        admin.put("/api/v1/policy", json={"bundle": "version: 1\ndefault_decision: allow\nrules: []\n"})
    acked: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def submit_forever(n: int) -> None:
        with httpx.Client(base_url=s.url, headers={"X-API-Key": ADMIN_KEY}, timeout=5) as c:
            i = 0
            while not stop.is_set():
                try:
                    r = c.post("/api/v1/jobs", json={"topic": "job.durable.x", "prompt": f"{n}-{i}"})
                except httpx.HTTPError:
                    return  # the server died under us: this request was never acknowledged
                if r.status_code == 201:
                    with lock:
                        acked.append(r.json()["job_id"])
                i += 1

    threads = [threading.Thread(target=submit_forever, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    s.kill9()  # mid-write: some requests are in flight
    stop.set()
    for t in threads:
        t.join(10)
    assert len(acked) > 20

    s2 = server_factory(None, data_dir=data)
    worker = s2.identity("drain", roles=["worker"], topics=["job.durable.**"])
    with s2.admin() as admin:
        for job_id in acked:
            r = admin.get(f"/api/v1/jobs/{job_id}")
            assert r.status_code == 200, f"acknowledged job {job_id} was lost"
            assert r.json()["status"] == "queued"
            stages = [d["stage"] for d in admin.get(f"/api/v1/jobs/{job_id}/decisions").json()["decisions"]]
            assert stages == ["submit"]
    leased: list[str] = []
    with s2.client(worker["api_key"]) as w:
        while True:
            jobs = w.post(
                "/api/v1/worker/lease", json={"topics": ["job.durable.**"], "max_jobs": 100}
            ).json()["jobs"]
            if not jobs:
                break
            leased += [j["job_id"] for j in jobs]
    assert len(leased) == len(set(leased))
    assert set(acked) <= set(leased)

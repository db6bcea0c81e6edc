"""The audit log over HTTP and on disk: every event type, tamper detection, kill -9, export."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime

import httpx
import jsonschema
import pytest
from harness import ADMIN_KEY, ROOT, SEED

SCHEMA = json.loads((ROOT / "schemas" / "decision-record.schema.json").read_text())


def audit_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gatehouse", "audit", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def entries(client: httpx.Client, stream: str | None = None) -> list[dict]:
    params = {"limit": 5000, **({"stream": stream} if stream else {})}
    r = client.get("/api/v1/audit", params=params)
    assert r.status_code == 200, r.text
    return r.json()["entries"]


def test_every_action_leaves_its_entry(server_factory) -> None:
    s = server_factory()
    agent = s.identity("audited", roles=["agent"])
    reviewer = s.identity("auditor", roles=["reviewer"])
    with s.admin() as admin, s.client(agent["api_key"]) as a:
        ok = a.post(
            "/api/v1/jobs",
            json={"topic": "job.demo.read", "prompt": "password=hunter2 status"},
            headers={"X-Request-ID": "req-test-1"},
        ).json()
        a.post("/api/v1/jobs", json={"topic": "job.exec.shell", "prompt": "rm -rf /"})
        a.post("/api/v1/policy/simulate", json={"topic": "job.x.y"})
        # The demo worker echoes the prompt; the seed's output rules hold a password for review.
        s.wait_status(ok["job_id"], {"quarantined"})
        admin.put("/api/v1/policy", json={"bundle": SEED.read_text().replace("name: seed", "name: v2")})
        admin.put("/api/v1/policy", json={"bundle": "version: 1\nrules: [\n"})
        admin.delete(f"/api/v1/identities/{agent['id']}")
    with s.client(reviewer["api_key"]) as rv:
        tenant = entries(rv)
        types = {e["type"] for e in tenant}
        assert {"job.submitted", "decision", "job.state"} <= types
        submitted = next(
            e for e in tenant if e["type"] == "job.submitted" and e["data"]["job_id"] == ok["job_id"]
        )
        assert submitted["actor"] == agent["id"]
        assert submitted["request_id"] == "req-test-1"
        assert "hunter2" not in json.dumps(tenant)  # no raw prompt, no secret
        assert submitted["data"]["prompt_sha256"]
        stages = [(e["data"]["stage"], e["data"]["result"]) for e in tenant if e["type"] == "decision"]
        assert (
            ("submit", "deny") in stages
            and ("dispatch", "allow") in stages
            and ("simulate", "allow") in stages
        )
        states = [
            e["data"]["to"]
            for e in tenant
            if e["type"] == "job.state" and e["data"]["job_id"] == ok["job_id"]
        ]
        assert states == ["dispatched", "quarantined"]
        # Reviewers see their tenant only.
        assert rv.get("/api/v1/audit", params={"stream": "system"}).status_code == 403
        assert rv.get("/api/v1/audit/verify").json()["ok"] is True
    with s.client(agent["api_key"]) as gone:
        assert gone.get("/api/v1/audit").status_code == 401
    with s.admin() as admin:
        system = {e["type"] for e in entries(admin, "system")}
        assert {
            "identity.created",
            "identity.revoked",
            "policy.installed",
            "policy.refused",
        } <= system
        plain = s.identity("plain")
        with s.client(plain["api_key"]) as p:
            assert p.get("/api/v1/audit").status_code == 403
        # decision records, from the API and from the log, follow the published schema
        for rec in admin.get(f"/api/v1/jobs/{ok['job_id']}/decisions").json()["decisions"]:
            jsonschema.validate(rec, SCHEMA)
            datetime.fromisoformat(rec["timestamp"].replace("Z", "+00:00"))


def _stop_and_tamper(s, sql: list[str]) -> subprocess.CompletedProcess[str]:
    s.stop()  # a clean stop signs the head of every stream
    db = sqlite3.connect(s.data_dir / "gatehouse.db")
    for stmt in sql:
        db.execute(stmt)
    db.commit()
    db.close()
    return audit_cli("verify", "--data-dir", str(s.data_dir))


@pytest.mark.parametrize(
    ("name", "sql", "first_bad"),
    [
        (
            "edit",
            [
                "UPDATE audit SET data = replace(data, '\"allow\"', '\"deny\"') "
                "WHERE stream = 'tenant:default' AND seq = 2"
            ],
            2,
        ),
        ("delete", ["DELETE FROM audit WHERE stream = 'tenant:default' AND seq = 3"], 3),
        (
            "swap",
            [
                "UPDATE audit SET seq = -1 WHERE stream = 'tenant:default' AND seq = 4",
                "UPDATE audit SET seq = 4 WHERE stream = 'tenant:default' AND seq = 5",
                "UPDATE audit SET seq = 5 WHERE stream = 'tenant:default' AND seq = -1",
            ],
            4,
        ),
        (
            "truncate",
            [
                "DELETE FROM audit WHERE stream = 'tenant:default' AND seq > "
                "(SELECT MAX(seq) - 3 FROM audit WHERE stream = 'tenant:default')"
            ],
            None,
        ),
    ],
)
def test_tampering_with_the_database_is_detected(server_factory, name, sql, first_bad) -> None:
    s = server_factory()
    with s.admin() as admin:
        for i in range(4):
            admin.post("/api/v1/jobs", json={"topic": "job.other.audit", "prompt": str(i)})
    clean = audit_cli("verify", "--data-dir", str(s.data_dir))
    assert clean.returncode == 0 and "ok   tenant:default" in clean.stdout
    out = _stop_and_tamper(s, sql)
    assert out.returncode == 1, out.stdout
    assert "BAD  tenant:default" in out.stdout
    if first_bad is not None:
        assert f"first bad entry {first_bad}:" in out.stdout
    else:
        assert "truncated" in out.stdout


def test_kill_9_under_write_load_leaves_a_verifiable_complete_chain(server_factory, tmp_path) -> None:
    data = tmp_path / "k9"
    s = server_factory(data_dir=data)
    acked: list[str] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=s.url, headers={"X-API-Key": ADMIN_KEY}, timeout=5) as c:
            while not stop.is_set():
                try:
                    r = c.post("/api/v1/jobs", json={"topic": "job.other.k9"})
                except httpx.HTTPError:
                    return
                if r.status_code == 201:
                    acked.append(r.json()["job_id"])

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(1.2)
    s.kill9()
    stop.set()
    for t in threads:
        t.join(10)
    out = audit_cli("verify", "--data-dir", str(data))
    assert out.returncode == 0, out.stdout
    db = sqlite3.connect(data / "gatehouse.db")
    logged = {
        json.loads(d)["job_id"] for (d,) in db.execute("SELECT data FROM audit WHERE type = 'job.submitted'")
    }
    assert set(acked) <= logged


def test_export_verifies_offline_and_detects_edits(server_factory, tmp_path) -> None:
    s = server_factory()
    with s.admin() as admin:
        for i in range(3):
            admin.post("/api/v1/jobs", json={"topic": "job.other.exp", "prompt": str(i)})
    out_file = tmp_path / "audit.jsonl"
    r = audit_cli("export", "--url", s.url, "--key", ADMIN_KEY, "--to", str(out_file))
    assert r.returncode == 0, r.stderr
    pub = s.data_dir / "keys" / "server.pub"
    ok = audit_cli("verify", "--file", str(out_file), "--trust-key", str(pub))
    assert ok.returncode == 0, ok.stdout
    records = [json.loads(line) for line in out_file.read_text().splitlines()]
    decisions = [r["data"] for r in records if r.get("record") == "entry" and r["type"] == "decision"]
    assert decisions
    for d in decisions:
        jsonschema.validate(d, SCHEMA)
    # A global admin's default export holds every tenant's stream, not only its acting one.
    with s.admin() as admin:
        body = {"name": "exp-agent", "tenant": "acme", "roles": ["agent"], "topics": ["**"]}
        body["capabilities"] = ["*"]
        made = admin.post("/api/v1/identities", json=body)
        assert made.status_code == 201, made.text
    with s.client(made.json()["api_key"]) as agent:
        r = agent.post("/api/v1/jobs", json={"topic": "job.other.exp", "prompt": "acme"})
        assert r.status_code == 201, r.text
        assert agent.get("/api/v1/audit/streams").status_code == 403  # reviewers and admins only
    every = tmp_path / "every.jsonl"
    assert audit_cli("export", "--url", s.url, "--key", ADMIN_KEY, "--to", str(every)).returncode == 0
    streams = {json.loads(line).get("stream") for line in every.read_text().splitlines()}
    assert {"tenant:acme", "tenant:default"} <= streams, streams
    assert audit_cli("verify", "--file", str(every), "--trust-key", str(pub)).returncode == 0
    s.stop()
    full = tmp_path / "full.jsonl"
    assert audit_cli("export", "--data-dir", str(s.data_dir), "--to", str(full)).returncode == 0
    assert audit_cli("verify", "--file", str(full), "--trust-key", str(pub)).returncode == 0
    lines = full.read_text().splitlines()
    idx = next(i for i, line in enumerate(lines) if '"type": "decision"' in line)
    lines[idx] = lines[idx].replace('"allow"', '"deny"')
    full.write_text("\n".join(lines) + "\n")
    bad = audit_cli("verify", "--file", str(full), "--trust-key", str(pub))
    assert bad.returncode == 1 and "was modified" in bad.stdout

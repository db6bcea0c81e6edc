"""Side channels and disclosure (probe F10, F11), over HTTP against real servers."""

from __future__ import annotations

import base64
import json
import stat
import time

import httpx
from harness import ADMIN_KEY, SEED, Server


def test_unknown_and_revoked_keys_get_one_answer(server: Server) -> None:
    agent = server.identity("disc-short-lived", roles=["agent"])
    with server.admin() as admin:
        assert admin.delete(f"/api/v1/identities/{agent['id']}").status_code == 200
    revoked = httpx.get(server.url + "/api/v1/whoami", headers={"X-API-Key": agent["api_key"]})
    unknown = httpx.get(server.url + "/api/v1/whoami", headers={"X-API-Key": "ghk_never_issued_0000"})
    assert revoked.status_code == unknown.status_code == 401
    assert revoked.json() == unknown.json()
    assert revoked.json()["error"]["code"] == "invalid_api_key"


def test_agents_see_the_snapshot_of_the_policy_not_its_text(server: Server) -> None:
    agent = server.identity("disc-agent", roles=["agent"])
    reviewer = server.identity("disc-reviewer", roles=["reviewer"])
    with server.client(agent["api_key"]) as c:
        seen = c.get("/api/v1/policy").json()
        assert set(seen) == {"name", "snapshot", "policy_snapshot"}
        assert seen["name"] == "seed" and len(seen["snapshot"]) == 64
    with server.client(reviewer["api_key"]) as c:
        full = c.get("/api/v1/policy").json()
        assert full["bundle"] == SEED.read_text()
        assert full["snapshot"] == seen["snapshot"]
        # The policy file is named, never its path.
        assert full["installed_by"] == "file:seed.yaml"


def test_no_file_path_in_api_answers(server: Server) -> None:
    paths = {str(SEED.parent), str(server.data_dir), str(server.data_dir.resolve())}
    reviewer = server.identity("disc-paths", roles=["reviewer", "approver"])
    with server.admin() as admin, server.client(reviewer["api_key"]) as rv:
        answers = [
            admin.get("/api/v1/policy").text,
            rv.get("/api/v1/policy").text,
            admin.get("/api/v1/whoami").text,
            admin.get("/api/v1/identities").text,
            admin.get("/readyz").text,
            rv.get("/api/v1/incidents").text,
            rv.get("/api/v1/approvals").text,
        ]
    for text in answers:
        for path in paths:
            assert path not in text, text[:300]


def test_database_files_are_private(server_factory) -> None:
    s = server_factory(SEED)
    agent = s.identity("disc-files", roles=["agent"])
    with s.client(agent["api_key"]) as c:
        assert c.post("/api/v1/jobs", json={"topic": "job.demo.echo", "prompt": "x"}).status_code == 201
    assert stat.S_IMODE(s.data_dir.stat().st_mode) == 0o700
    names = ["gatehouse.db", "gatehouse.db-wal", "gatehouse.db-shm"]
    for name in names:
        path = s.data_dir / name
        assert path.exists(), name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, (name, oct(path.stat().st_mode))
    # A data directory an older version left readable is narrowed at the next start.
    s.stop()
    for name in names:
        if (s.data_dir / name).exists():
            (s.data_dir / name).chmod(0o644)
    s.data_dir.chmod(0o755)
    s.start()
    assert stat.S_IMODE(s.data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((s.data_dir / "gatehouse.db").stat().st_mode) == 0o600


def test_metrics_port_0_means_metrics_on_the_api_port_only(server_factory) -> None:
    # Two servers with --metrics-port 0: neither binds the default metrics port, so the second
    # starts (before, both bound 9090 and the second died with EADDRINUSE).
    first = server_factory(SEED, "--metrics-port", "0")
    second = server_factory(SEED, "--metrics-port", "0")
    for s in (first, second):
        r = httpx.get(s.url + "/metrics")
        assert r.status_code == 200 and "gatehouse_" in r.text
    assert first.proc is not None and first.proc.poll() is None
    assert second.proc is not None and second.proc.poll() is None
    for s in (first, second):
        assert "9090" not in s.log()


def test_audit_verify_is_rate_limited_per_identity(server: Server) -> None:
    reviewer = server.identity("disc-verifier", roles=["reviewer"])
    other = server.identity("disc-verifier-2", roles=["reviewer"])
    with server.client(reviewer["api_key"]) as c:
        first = c.get("/api/v1/audit/verify")
        assert first.status_code == 200 and first.json()["ok"] is True
        second = c.get("/api/v1/audit/verify")
        assert second.status_code == 429
        assert second.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(second.headers["Retry-After"]) <= 10
    with server.client(other["api_key"]) as c:  # per identity, not global
        assert c.get("/api/v1/audit/verify").status_code == 200


def test_healthz_answers_while_a_verification_runs(server: Server) -> None:
    # Enough entries that a verification takes a noticeable time on the event loop.
    agent = server.identity("disc-volume", roles=["agent"], tenant="volume", rate_limit="0")
    with server.client(agent["api_key"]) as c:
        for i in range(300):
            c.post("/api/v1/jobs", json={"topic": "job.other.v", "prompt": str(i)})
    import threading

    done = threading.Event()
    result: dict[str, int] = {}

    def verify() -> None:
        with httpx.Client(base_url=server.url, headers={"X-API-Key": ADMIN_KEY}, timeout=60) as c:
            result["status"] = c.get("/api/v1/audit/verify").status_code
        done.set()

    t = threading.Thread(target=verify)
    t.start()
    worst = 0.0
    while not done.is_set():
        started = time.monotonic()
        assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200
        worst = max(worst, time.monotonic() - started)
    t.join()
    assert result["status"] == 200
    assert worst < 1.0, worst


def test_attachment_names_are_sanitised(server: Server) -> None:
    agent = server.identity("disc-attach", roles=["agent"])
    content = base64.b64encode(b"plain text").decode()
    names = {
        "../../etc/passwd": "passwd",
        "..\\..\\windows\\win.ini": "win.ini",
        "re\x00port\x1b[2J.txt": "report[2J.txt",
        "x" * 250 + ".txt": "x" * 124 + ".txt",
        "..": "attachment",
    }
    with server.client(agent["api_key"]) as c:
        for given, expected in names.items():
            body = {
                "topic": "job.other.files",
                "attachments": [{"name": given, "content_type": "text/plain", "content_base64": content}],
            }
            r = c.post("/api/v1/jobs", json=body)
            assert r.status_code == 201, r.text
            job = c.get(f"/api/v1/jobs/{r.json()['job_id']}").json()
            assert [a["name"] for a in job["attachments"]] == [expected]


def test_the_audit_log_names_the_policy_file_without_its_path(server: Server) -> None:
    with server.admin() as admin:
        entries = admin.get("/api/v1/audit", params={"stream": "system", "limit": 500}).json()
    text = json.dumps(entries)
    assert "file:seed.yaml" in text
    assert str(server.data_dir.parent) not in text and "/examples/policies/" not in text

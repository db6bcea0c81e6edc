"""Signed bundles against a running server: refusals, rollback, last-known-good, hot reload."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from harness import ADMIN_KEY, SEED

GH = [sys.executable, "-m", "gatehouse"]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GH, *args], capture_output=True, text=True, cwd=cwd, timeout=60)


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    assert run("keys", "generate", "--out", str(tmp_path / "ops")).returncode == 0
    assert run("keys", "generate", "--out", str(tmp_path / "rogue")).returncode == 0
    assert (tmp_path / "ops.key").stat().st_mode & 0o777 == 0o600
    return tmp_path


def sign(keys: Path, bundle: Path, serial: int, key: str = "ops", name: str | None = None) -> Path:
    out = keys / (name or f"signed-{key}-{serial}.json")
    r = run(
        "policy",
        "sign",
        str(bundle),
        "--key",
        str(keys / f"{key}.key"),
        "--serial",
        str(serial),
        "--expires",
        "30d",
        "--out",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    return out


def variant(keys: Path, n: int) -> Path:
    path = keys / f"policy-{n}.yaml"
    path.write_text(SEED.read_text().replace("name: seed", f"name: seed\n# revision {n}"))
    return path


def metric(server, name: str) -> float:
    total = 0.0
    for line in httpx.get(server.metrics_url).text.splitlines():
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_trusted_keys_refuse_bad_bundles_and_keep_the_running_one(server_factory, keys: Path) -> None:
    s1 = sign(keys, variant(keys, 1), 1)
    s = server_factory(s1, "--trust-key", str(keys / "ops.pub"))
    with s.admin() as admin:
        running = admin.get("/api/v1/policy").json()
        assert running["signed"] is True and running["serial"] == 1

        def put(body: dict) -> httpx.Response:
            return admin.put("/api/v1/policy", json=body)

        r = put({"bundle": variant(keys, 2).read_text()})
        assert r.status_code == 422 and r.json()["error"]["code"] == "bundle_unsigned"
        tampered = json.loads(sign(keys, variant(keys, 2), 2).read_text())
        tampered["bundle"] = tampered["bundle"].replace("decision: deny", "decision: allow")
        r = put(tampered)
        assert r.json()["error"]["code"] == "bundle_bad_signature"
        r = put(json.loads(sign(keys, variant(keys, 3), 3, key="rogue").read_text()))
        assert r.json()["error"]["code"] == "bundle_unknown_key"
        good = json.loads(sign(keys, variant(keys, 4), 4).read_text())
        r = put(good)
        assert r.status_code == 200, r.text
        assert r.json()["serial"] == 4
        snapshot = r.json()["snapshot"]
        # Replaying an older, validly signed bundle is a rollback.
        r = put(json.loads(s1.read_text()))
        assert r.status_code == 422 and r.json()["error"]["code"] == "bundle_rollback"
        r = put(json.loads(sign(keys, variant(keys, 5), 4, name="same-serial.json").read_text()))
        assert r.json()["error"]["code"] == "bundle_rollback"
        assert admin.get("/api/v1/policy").json()["snapshot"] == snapshot
    text = httpx.get(s.metrics_url).text
    for reason in ("unsigned", "bad_signature", "unknown_key", "rollback"):
        assert f'gatehouse_policy_bundle_refused_total{{reason="{reason}"}}' in text


def test_restart_with_a_bad_policy_file_runs_on_last_known_good(
    server_factory, keys: Path, tmp_path: Path
) -> None:
    data = tmp_path / "lkg"
    policy_file = tmp_path / "current.json"
    policy_file.write_text(sign(keys, variant(keys, 1), 1).read_text())
    s = server_factory(policy_file, "--trust-key", str(keys / "ops.pub"), data_dir=data)
    good = s.admin().get("/api/v1/policy").json()["snapshot"]
    s.stop()

    for breakage in ("tampered", "corrupt", "missing"):
        if breakage == "tampered":
            env = json.loads(policy_file.read_text())
            env["bundle"] = env["bundle"].replace("decision: deny", "decision: allow")
            policy_file.write_text(json.dumps(env))
        elif breakage == "corrupt":
            policy_file.write_text("{ this is not json")
        else:
            policy_file.unlink()
        s = server_factory(policy_file, "--trust-key", str(keys / "ops.pub"), data_dir=data)
        with s.admin() as admin:
            info = admin.get("/api/v1/policy").json()
            assert info["snapshot"] == good, breakage
            assert "last-known-good" in info["degraded"]
            r = admin.post("/api/v1/jobs", json={"topic": "job.exec.shell", "prompt": "rm -rf /"})
            assert r.status_code == 403 and r.json()["decision"]["rule_id"] == "deny-destructive-exec"
        assert metric(s, "gatehouse_policy_last_known_good_total") == 1
        assert "LAST-KNOWN-GOOD" in s.log().upper()
        s.stop()


def test_no_good_bundle_at_all_fails_closed(server_factory, keys: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nrules:\n  - id: x\n    decision: nope\n")
    s = server_factory(bad)
    with s.admin() as admin:
        assert admin.get("/api/v1/policy").status_code == 404
        r = admin.post("/api/v1/jobs", json={"topic": "job.exec.shell"})
        assert r.status_code == 403
        assert r.json()["decision"]["reason"] == "kernel_unavailable"
    assert httpx.get(s.url + "/readyz").status_code == 503


def test_hot_reload_of_the_watched_file_and_policy_push(server_factory, tmp_path: Path) -> None:
    policy_file = tmp_path / "live.yaml"
    policy_file.write_text(SEED.read_text())
    s = server_factory(policy_file)
    with s.admin() as admin:
        before = admin.get("/api/v1/policy").json()["snapshot"]
        policy_file.write_text(SEED.read_text().replace("default_decision: allow", "default_decision: deny"))
        deadline = time.monotonic() + 5
        while admin.get("/api/v1/policy").json()["snapshot"] == before and time.monotonic() < deadline:
            time.sleep(0.1)
        assert admin.get("/api/v1/policy").json()["snapshot"] != before
        r = admin.post("/api/v1/policy/simulate", json={"topic": "job.other.x"})
        assert r.json()["result"] == "deny" and r.json()["rule_id"] == "default"
        # A broken edit is refused; the running bundle stays.
        current = admin.get("/api/v1/policy").json()["snapshot"]
        policy_file.write_text("version: 1\nrules: [\n")
        time.sleep(1.5)
        assert admin.get("/api/v1/policy").json()["snapshot"] == current
    pushed = tmp_path / "pushed.yaml"
    pushed.write_text(SEED.read_text().replace("name: seed", "name: pushed"))
    r = subprocess.run(
        [*GH, "policy", "push", str(pushed), "--url", s.url, "--key", ADMIN_KEY],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert s.admin().get("/api/v1/policy").json()["name"] == "pushed"


def test_repeated_decisions_come_from_the_cache(server) -> None:
    with server.admin() as admin:
        body = {"topic": "job.cache.x", "prompt": "one"}
        admin.post("/api/v1/policy/simulate", json=body)
        second = admin.post("/api/v1/policy/simulate", json={**body, "prompt": "two"}).json()
        assert second["cached"] is True
    assert metric(server, 'gatehouse_decision_cache_total{event="hit"}') >= 1

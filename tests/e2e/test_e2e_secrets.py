"""Secrets against a running server: an admin sets, lists, shows and deletes them over HTTP and
with `gatehouse secret`; the value is in no answer, error, log line, audit entry or metric, and
the database holds it sealed only."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from harness import ADMIN_KEY, Server

VALUE = "ghp_RECOGNISABLE_s3cret_7f3a9c1e_VALUE"
CLI_VALUE = "cli-secret-VALUE-90e1d2c3b4"


def cli(server: Server, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GATEHOUSE_URL": server.url, "GATEHOUSE_API_KEY": ADMIN_KEY}
    env.pop("GATEHOUSE_KEY", None)
    env.pop("GATEHOUSE_ADMIN_KEY", None)
    command = [sys.executable, "-m", "gatehouse", "secret", *args]
    return subprocess.run(command, capture_output=True, text=True, input=stdin, env=env, timeout=60)


def test_a_secret_value_never_comes_back_out(server: Server) -> None:
    seen: list[str] = []
    agent = server.identity("secret-agent", tenant="default", roles=["agent"])
    with server.admin() as c:
        r = c.put("/api/v1/secrets/github_token", json={"value": VALUE})
        assert r.status_code == 201, r.text
        assert r.json()["name"] == "github_token" and "value" not in r.json()
        seen.append(r.text)
        r = c.put("/api/v1/secrets/github_token", json={"value": VALUE})
        assert r.status_code == 200
        seen.append(r.text)
        listed = c.get("/api/v1/secrets")
        assert [s["name"] for s in listed.json()["secrets"]] == ["github_token"]
        assert {"created_at", "updated_at"} <= set(listed.json()["secrets"][0])
        seen.append(listed.text)
        one = c.get("/api/v1/secrets/github_token")
        assert one.status_code == 200 and one.json()["name"] == "github_token"
        seen.append(one.text)
        # Bad requests carrying the value: the errors say what is wrong, never echo it.
        for method, path, body, status, code in [
            ("PUT", "/api/v1/secrets/bad%20name", {"value": VALUE}, 422, "invalid_secret_name"),
            ("PUT", "/api/v1/secrets/x", {"value": VALUE, "extra": VALUE}, 422, "invalid_extra"),
            ("PUT", "/api/v1/secrets/x", {"valu": VALUE}, 422, "invalid_value"),
            ("PUT", "/api/v1/secrets/x", {"value": [VALUE]}, 422, "invalid_value"),
            ("PUT", "/api/v1/secrets/x", {"value": VALUE * 2000}, 413, "secret_too_large"),
            ("GET", "/api/v1/secrets/nope", None, 404, "secret_not_found"),
        ]:
            r = c.request(method, path, json=body)
            assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.text
            seen.append(r.text)
    with server.client(agent["api_key"]) as c:
        for r in (c.get("/api/v1/secrets"), c.get("/api/v1/secrets/github_token"),
                  c.put("/api/v1/secrets/github_token", json={"value": "overwrite"})):  # fmt: skip
            assert r.status_code == 403 and r.json()["error"]["code"] == "missing_role"
            seen.append(r.text)
    with server.admin() as c:
        audit = c.get("/api/v1/audit", params={"stream": "tenant:default"})
        events = [(e["type"], e["data"]) for e in audit.json()["entries"] if e["type"].startswith("secret.")]
        assert events == [
            ("secret.set", {"name": "github_token", "created": True}),
            ("secret.set", {"name": "github_token", "created": False}),
        ]
        seen.append(audit.text)
        seen.append(c.get("/api/v1/audit", params={"stream": "system"}).text)
        seen.append(c.get("/metrics").text)
        gone = c.delete("/api/v1/secrets/github_token")
        assert gone.status_code == 200 and c.get("/api/v1/secrets/github_token").status_code == 404
        assert c.delete("/api/v1/secrets/github_token").status_code == 404
    import httpx

    seen.append(httpx.get(server.metrics_url).text)
    seen.append(server.log())
    for text in seen:
        assert VALUE not in text and VALUE[:20] not in text
    # At rest: the database, its WAL and the key directory hold no plain value.
    data = server.data_dir
    for path in data.rglob("*"):
        if path.is_file():
            assert VALUE.encode() not in path.read_bytes(), path
    key = data / "keys" / "secrets.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_cli_set_list_delete(server: Server) -> None:
    done = cli(server, "set", "deploy_key", stdin=CLI_VALUE + "\n")
    assert done.returncode == 0, done.stderr
    assert '"name": "deploy_key"' in done.stdout and CLI_VALUE not in done.stdout + done.stderr
    listed = cli(server, "list")
    assert listed.returncode == 0 and "deploy_key" in listed.stdout and CLI_VALUE not in listed.stdout
    empty = cli(server, "set", "empty_one", stdin="")
    assert empty.returncode != 0 and "empty" in empty.stderr and "Traceback" not in empty.stderr
    bad = cli(server, "set", "bad name", stdin=CLI_VALUE)
    assert bad.returncode == 1 and "invalid_secret_name" in bad.stderr and CLI_VALUE not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    deleted = cli(server, "delete", "deploy_key")
    assert deleted.returncode == 0, deleted.stderr
    again = cli(server, "delete", "deploy_key")
    assert again.returncode == 1 and "secret_not_found" in again.stderr
    assert CLI_VALUE not in server.log()


def test_the_environment_key_is_used_and_no_key_file_is_written(server_factory, tmp_path: Path) -> None:
    import base64

    key = base64.b64encode(bytes(range(32))).decode()
    s = server_factory(env={"GATEHOUSE_SECRETS_KEY": key})
    with s.admin() as c:
        assert c.put("/api/v1/secrets/x", json={"value": "v"}).status_code == 201
    assert not (s.data_dir / "keys" / "secrets.key").exists()

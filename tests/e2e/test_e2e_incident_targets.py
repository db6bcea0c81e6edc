"""Containing a tenant or identity that does not exist is refused (a typo must not leave the real
one running), unless forced; over HTTP and through `gatehouse incident`."""

from __future__ import annotations

import os
import subprocess
import sys

from harness import ADMIN_KEY, Server


def cli(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GATEHOUSE_URL": server.url, "GATEHOUSE_API_KEY": ADMIN_KEY}
    return subprocess.run(
        [sys.executable, "-m", "gatehouse", "incident", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_unknown_tenant_or_identity_is_refused_unless_forced(server: Server) -> None:
    with server.admin() as c:
        r = c.post("/api/v1/incidents/contain", json={"tenant": "no-such-tenant", "reason": "typo"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "tenant_not_found"
        r = c.post("/api/v1/incidents/contain", json={"identity": "idn_nope", "reason": "typo"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "identity_not_found"
        assert c.get("/api/v1/incidents").json()["incidents"] == []
        forced = c.post(
            "/api/v1/incidents/contain", json={"tenant": "no-such-tenant", "reason": "ahead", "force": True}
        )
        assert forced.status_code == 201, forced.text
        assert forced.json()["target"] == "no-such-tenant"
        assert c.post(f"/api/v1/incidents/{forced.json()['id']}/lift").status_code == 200


def test_a_tenant_exists_while_an_identity_of_it_does_even_revoked(server: Server) -> None:
    ghost = server.identity("ghost", tenant="revoked-only")
    with server.admin() as c:
        assert c.delete(f"/api/v1/identities/{ghost['id']}").status_code in (200, 204)
        r = c.post("/api/v1/incidents/contain", json={"tenant": "revoked-only", "reason": "late jobs"})
        assert r.status_code == 201, r.text
        assert c.post(f"/api/v1/incidents/{r.json()['id']}/lift").status_code == 200


def test_cli_contain_list_lift(server: Server) -> None:
    empty = cli(server, "list")
    assert empty.returncode == 0, empty.stderr
    assert empty.stdout.strip() == "no containments in force"

    refused = cli(server, "contain", "--tenant", "nope", "--reason", "typo")
    assert refused.returncode != 0
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "tenant_not_found" in lines[0] and "nope" in lines[0]
    assert "Traceback" not in refused.stderr

    forced = cli(server, "contain", "--tenant", "nope", "--reason", "ahead of time", "--force")
    assert forced.returncode == 0, forced.stderr
    listed = cli(server, "list")
    header, *rows = listed.stdout.strip().splitlines()
    assert header.split() == ["ID", "KIND", "TARGET", "STATE", "REASON"]
    assert len(rows) == 1 and "nope" in rows[0] and "active" in rows[0]
    incident_id = rows[0].split()[0]
    lifted = cli(server, "lift", incident_id)
    assert lifted.returncode == 0, lifted.stderr
    assert cli(server, "list").stdout.strip() == "no containments in force"
    assert "no containments" not in cli(server, "list", "--all").stdout

    for command in ("contain", "list", "lift"):
        helped = cli(server, command, "--help")
        assert helped.returncode == 0
        body = helped.stdout.split("Options:")[0]
        assert len(body.strip().splitlines()) >= 3, helped.stdout  # usage line and a description
    assert "--force" in cli(server, "contain", "--help").stdout


def test_cli_says_in_one_line_when_the_server_is_unreachable(tmp_path: object) -> None:
    env = {**os.environ, "GATEHOUSE_URL": "http://127.0.0.1:9", "GATEHOUSE_API_KEY": ADMIN_KEY}
    done = subprocess.run(
        [sys.executable, "-m", "gatehouse", "incident", "list"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode != 0
    assert len(done.stderr.strip().splitlines()) == 1 and "cannot reach" in done.stderr

"""The commands that talk to a server: one way to give URL and key, one-line errors, `--tenant`
honoured or refused, the terminal's jobs/approvals/quarantine/decisions commands, `--json`,
and shell completion. Every command runs as a user runs it: `python -m gatehouse ...`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from harness import ADMIN_KEY, ROOT, SEED, Server, free_port

PROD_WRITE = {
    "topic": "job.deploy.apply",
    "prompt": "terraform apply",
    "labels": {"env": "prod"},
    "meta": {"capability": "infra.write"},
}


def run(
    *args: object, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")}
    return subprocess.run(
        [sys.executable, "-m", "gatehouse", *map(str, args)],
        capture_output=True, text=True, input=stdin, cwd=ROOT, timeout=60,
        env={**clean, **(env or {})},
    )  # fmt: skip


def _remote_commands(tmp: Path) -> list[list[str]]:
    bundle = tmp / "b.yaml"
    bundle.write_text(SEED.read_text())
    return [
        ["identity", "list"], ["identity", "create", "bob"], ["identity", "revoke", "idn_x"],
        ["incident", "list"], ["incident", "contain", "--identity", "idn_x", "--reason", "r"],
        ["incident", "lift", "inc_x"],
        ["policy", "push", str(bundle)],
        ["audit", "verify"], ["audit", "export", "--to", str(tmp / "a.jsonl")],
        ["secret", "list"], ["secret", "delete", "db"],
        ["mcp", "tools", "git"], ["mcp", "pin", "git", "status"],
        ["jobs", "list"], ["jobs", "show", "job_x"], ["jobs", "decisions", "job_x"],
        ["jobs", "cancel", "job_x"],
        ["approvals", "list"], ["approvals", "show", "apr_x"], ["approvals", "approve", "job_x", "--yes"],
        ["approvals", "reject", "job_x", "--yes"],
        ["quarantine", "list"], ["quarantine", "show", "job_x"],
        ["quarantine", "release", "job_x", "--yes"], ["quarantine", "discard", "job_x", "--yes"],
        ["decisions", "list"], ["decisions", "show", "dec_x"],
        ["worker", "--topics", "job.x.**", "--once"],
        ["redteam"],
    ]  # fmt: skip


def test_every_remote_command_says_in_one_line_that_the_server_is_down(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = {"GATEHOUSE_URL": url, "GATEHOUSE_API_KEY": "ghk_some_key"}
    for args in _remote_commands(tmp_path):
        r = run(*args, env=env)
        assert r.returncode != 0, (args, r.stdout)
        assert "Traceback" not in r.stderr, (args, r.stderr)
        # One error line, the last one (`worker` says what it leases first).
        errors = [x for x in r.stderr.splitlines() if x.startswith("error:")]
        assert len(errors) == 1 and r.stderr.strip().splitlines()[-1] == errors[0], (args, r.stderr)
        assert errors[0].startswith("error: cannot reach") and url.split("//")[1] in errors[0], (args, errors)
        assert r.returncode == 3, (args, r.returncode)


def test_the_url_and_key_come_from_flags_or_the_environment(server: Server) -> None:
    by_flags = run("identity", "list", "--url", server.url, "--key", ADMIN_KEY)
    by_env = run("identity", "list", env={"GATEHOUSE_URL": server.url, "GATEHOUSE_API_KEY": ADMIN_KEY})
    assert by_flags.returncode == 0 and by_env.returncode == 0, by_flags.stderr + by_env.stderr
    assert by_flags.stdout.splitlines()[0].split() == ["ID", "NAME", "TENANT", "ROLES", "STATE"]
    assert by_flags.stdout == by_env.stdout
    missing = run("jobs", "list", "--url", server.url)
    assert missing.returncode == 2 and "--key" in missing.stderr
    bad = run("jobs", "list", "--url", server.url, "--key", "ghk_wrong")
    assert (
        bad.returncode == 1 and bad.stderr.strip() == "error: 401 invalid_api_key: the API key is not valid"
    )


def test_audit_export_through_the_environment(server: Server, tmp_path: Path) -> None:
    env = {"GATEHOUSE_URL": server.url, "GATEHOUSE_API_KEY": ADMIN_KEY}
    r = run("audit", "export", "--to", tmp_path / "audit.jsonl", env=env)
    assert r.returncode == 0 and "exported" in r.stdout, r.stderr
    # An explicit --data-dir wins over $GATEHOUSE_URL instead of clashing with it.
    r = run("audit", "verify", "--data-dir", server.data_dir, env=env)
    assert "give exactly one" not in r.stderr


def test_tenant_is_honoured_or_refused(server: Server) -> None:
    # The bootstrap admin is a global admin: `--tenant acme` alone creates in acme and lists acme.
    env = {"GATEHOUSE_URL": server.url, "GATEHOUSE_API_KEY": ADMIN_KEY}
    r = run("identity", "create", "carol", "--tenant", "acme", env=env)
    assert r.returncode == 0 and json.loads(r.stdout)["tenant"] == "acme", r.stderr
    only_acme = json.loads(run("identity", "list", "--json", "--tenant", "acme", env=env).stdout)
    assert [i["name"] for i in only_acme] == ["carol"]
    everyone = json.loads(run("identity", "list", "--json", env=env).stdout)
    assert {"carol", "admin"} <= {i["name"] for i in everyone}
    r = run("jobs", "list", "--json", "--tenant", "acme", env=env)
    assert r.returncode == 0 and json.loads(r.stdout)["jobs"] == []
    # An admin of tenant `default` may not act in acme: refused in one line, never ignored.
    local = server.identity("cli-local-admin", tenant="default", roles=["admin"])
    env = {"GATEHOUSE_URL": server.url, "GATEHOUSE_API_KEY": local["api_key"]}
    refused = [
        ["identity", "create", "dave", "--tenant", "acme"],
        ["identity", "list", "--tenant", "acme"],
        ["jobs", "list", "--tenant", "acme"],
        ["decisions", "list", "--tenant", "acme"],
    ]
    for args in refused:
        r = run(*args, env=env)
        assert r.returncode == 1 and "tenant_mismatch" in r.stderr and "Traceback" not in r.stderr, args
    r = run("identity", "create", "dave", "--for-tenant", "acme", env=env)
    assert r.returncode == 1 and "tenant_mismatch" in r.stderr


def test_jobs_approvals_and_decisions_from_the_terminal(server: Server) -> None:
    agent = server.identity("cli-agent", roles=["agent"])
    approver = server.identity("cli-approver", roles=["approver"])
    with server.client(agent["api_key"]) as c:
        job = c.post("/api/v1/jobs", json=PROD_WRITE).json()
    admin = {"GATEHOUSE_URL": server.url, "GATEHOUSE_API_KEY": ADMIN_KEY}
    ap = {"GATEHOUSE_URL": server.url, "GATEHOUSE_API_KEY": approver["api_key"]}

    listed = run("jobs", "list", "--status", "pending_approval", env=admin)
    assert listed.stdout.splitlines()[0].split()[:2] == ["JOB", "STATUS"]
    assert job["job_id"] in listed.stdout
    page = json.loads(run("jobs", "list", "--json", "--limit", "1", env=admin).stdout)
    assert len(page["jobs"]) == 1 and "next_cursor" in page
    assert json.loads(run("jobs", "show", job["job_id"], env=admin).stdout)["status"] == "pending_approval"

    queue = json.loads(run("approvals", "list", "--json", env=ap).stdout)["approvals"]
    assert [a["job_id"] for a in queue] == [job["job_id"]]
    # Without --yes it asks; "n" leaves the job waiting.
    r = run("approvals", "approve", job["job_id"], env=ap, stdin="n\n")
    assert r.returncode == 1 and "Aborted" in r.stderr
    assert json.loads(run("jobs", "show", job["job_id"], env=admin).stdout)["status"] == "pending_approval"
    r = run("approvals", "approve", job["job_id"], "--comment", "change 42", env=ap, stdin="y\n")
    assert r.returncode == 0 and json.loads(r.stdout)["approval"]["status"] == "approved", r.stderr
    r = run("approvals", "approve", job["job_id"], "--yes", env=ap)
    assert r.returncode == 1 and r.stderr.startswith("error: 409 ")
    assert run("approvals", "list", env=ap).stdout.strip() == "no pending approvals"
    decided = run("approvals", "list", "--status", "approved", env=ap).stdout
    assert job["job_id"] in decided

    stages = {
        d["stage"] for d in json.loads(run("jobs", "decisions", job["job_id"], "--json", env=admin).stdout)
    }
    assert {"submit", "approval"} <= stages
    log = run("decisions", "list", "--stage", "approval", env=admin)
    assert log.stdout.splitlines()[0].split()[:3] == ["DECISION", "STAGE", "RESULT"]
    assert job["job_id"] in log.stdout
    r = run("decisions", "list", "--stage", "nope", env=admin)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    bot = {"GATEHOUSE_URL": server.url, "GATEHOUSE_API_KEY": agent["api_key"]}
    r = run("quarantine", "list", env=bot)  # an agent is no reviewer: 403, one line
    assert r.returncode == 1 and "missing_role" in r.stderr
    reviewer = server.identity("cli-reviewer", roles=["reviewer"])
    rv = {"GATEHOUSE_URL": server.url, "GATEHOUSE_API_KEY": reviewer["api_key"]}
    assert run("quarantine", "list", env=rv).stdout.strip() == "nothing in quarantine"
    r = run("quarantine", "show", "job_nope", env=rv)
    assert r.returncode == 1 and "job_not_found" in r.stderr


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("gatehouse appr", "approvals"),
        ("gatehouse jobs l", "list"),
        ("gatehouse decisions list --st", "--stage"),
    ],
)
def test_shell_completion(words: str, expected: str) -> None:
    env = {
        "_GATEHOUSE_COMPLETE": "bash_complete",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - 1),
    }
    r = subprocess.run(
        [sys.executable, "-c", "from gatehouse.cli import main; main(prog_name='gatehouse')"],
        capture_output=True, text=True, env={**os.environ, **env}, cwd=ROOT, timeout=60,
    )  # fmt: skip
    offered = [line.split(",", 1)[1] for line in r.stdout.splitlines()]  # bash: "TYPE,VALUE"
    assert expected in offered, r.stdout + r.stderr

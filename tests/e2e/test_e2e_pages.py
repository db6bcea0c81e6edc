"""Every listing pages the same way, over HTTP against a real server: `limit` rows and a
`next_cursor` to pass as `cursor`, until it is null. Walking every page of a listing longer than
one page loses nothing and repeats nothing, even when rows change between pages; a bad cursor
is 422 `invalid_cursor`, a limit outside 1..500 is 422 `invalid_limit`; tenant rules hold on
every page; the terminal's `list` commands page with `--limit` and `--cursor`."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from typing import Any

import httpx
import pytest
from harness import ADMIN_KEY, ROOT, Server

AWS_KEY = "AKIAQ7XK2M4N6P8R0T2V"
PROD = {"topic": "job.deploy.apply", "prompt": "terraform apply", "labels": {"env": "prod"},
        "meta": {"capability": "infra.write"}}  # fmt: skip
BAD_CURSORS = [
    "!!",
    base64.urlsafe_b64encode(b"nope").decode(),
    base64.urlsafe_b64encode(b"s9223372036854775808").decode().rstrip("="),
    base64.urlsafe_b64encode(b"knan|idn_x").decode().rstrip("="),
    "A" * 600,
]


def walk(c: httpx.Client, path: str, key: str, limit: int, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Every row of a listing, page by page, as a client walks it; and the number of pages."""
    rows: list[dict[str, Any]] = []
    cursor = None
    for pages in range(1, 100):
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        r = c.get(path, params=query)
        assert r.status_code == 200, r.text
        page = r.json()
        assert "next_cursor" in page and len(page[key]) <= limit
        rows += page[key]
        cursor = page["next_cursor"]
        if cursor is None:
            return rows, pages
    raise AssertionError(f"{path} never ended")


def assert_refuses_bad_pages(c: httpx.Client, path: str, **params: Any) -> None:
    for cursor in BAD_CURSORS:
        r = c.get(path, params={**params, "cursor": cursor})
        assert r.status_code == 422, (path, cursor, r.text)
        assert r.json()["error"]["code"] == "invalid_cursor", (path, cursor, r.text)
    for limit in (0, 501, -1):
        r = c.get(path, params={**params, "limit": limit})
        assert r.status_code == 422, (path, limit, r.text)
        assert r.json()["error"]["code"] == "invalid_limit", (path, limit, r.text)


def cli(*args: object, key: str, url: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")}
    return subprocess.run(
        [sys.executable, "-m", "gatehouse", *map(str, args)],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
        env={**clean, "GATEHOUSE_URL": url, "GATEHOUSE_API_KEY": key},
    )  # fmt: skip


def cli_walk(*args: str, key: str, url: str, limit: int) -> list[Any]:
    """Run a `list --json` command page after page, following its next cursor: the page's
    `next_cursor` when it prints the page, else the `more: --cursor` line on stderr."""
    rows: list[Any] = []
    cursor: list[str] = []
    for _ in range(50):
        r = cli(*args, "--json", "--limit", limit, *cursor, key=key, url=url)
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        if isinstance(out, list):
            rows += out
            more = [line for line in r.stderr.splitlines() if line.startswith("more: --cursor ")]
            nxt = more[0].removeprefix("more: --cursor ") if more else None
        else:
            rows += next(v for k, v in out.items() if k != "next_cursor")
            nxt = out["next_cursor"]
        if not nxt:
            return rows
        cursor = ["--cursor", nxt]
    raise AssertionError("the CLI never ended")


# ---- approvals --------------------------------------------------------------------------------


def test_the_approval_queue_pages_oldest_first_without_loss_while_it_moves(server: Server) -> None:
    tenant = "pages-apr"
    agent = server.identity("pg-agent", tenant=tenant, roles=["agent"])
    approver = server.identity("pg-approver", tenant=tenant, roles=["approver"])
    other = server.identity("pg-agent-other", tenant="pages-apr-2", roles=["agent"])
    with server.client(agent["api_key"]) as c:
        ids = [
            c.post("/api/v1/jobs", json={**PROD, "prompt": f"apply {n}"}).json()["job_id"] for n in range(7)
        ]
    with server.client(other["api_key"]) as c:
        foreign = c.post("/api/v1/jobs", json=PROD).json()["job_id"]
    with server.client(approver["api_key"]) as c:
        rows, pages = walk(c, "/api/v1/approvals", "approvals", 3)
        assert pages == 3 and [a["job_id"] for a in rows] == ids  # oldest first, each once
        assert foreign not in {a["job_id"] for a in rows}
        # Each item is described as before: the job, its decision, who asked.
        assert rows[0]["job"]["prompt"] == "apply 0" and rows[0]["decision"]["result"] == "require_approval"
        assert rows[0]["requested_by"]["name"] == "pg-agent"
        # The queue moves between pages: an approval on the first page is decided, a new job
        # arrives. The second page still starts where the first one ended.
        first = c.get("/api/v1/approvals", params={"limit": 3}).json()
        assert c.post(f"/api/v1/approvals/{ids[0]}/approve", json={}).status_code == 200
        with server.client(agent["api_key"]) as a:
            late = a.post("/api/v1/jobs", json={**PROD, "prompt": "late"}).json()["job_id"]
        second = c.get("/api/v1/approvals", params={"limit": 3, "cursor": first["next_cursor"]}).json()
        assert [a["job_id"] for a in second["approvals"]] == ids[3:6]
        rest, _ = walk(c, "/api/v1/approvals", "approvals", 500)
        assert [a["job_id"] for a in rest] == [*ids[1:], late]
        # The status filter pages too; the default limit answers the whole (short) queue.
        approved = c.get("/api/v1/approvals", params={"status": "approved", "limit": 1}).json()
        assert [a["job_id"] for a in approved["approvals"]] == [ids[0]] and approved["next_cursor"] is None
        whole = c.get("/api/v1/approvals").json()
        assert len(whole["approvals"]) == 7 and whole["next_cursor"] is None
        assert_refuses_bad_pages(c, "/api/v1/approvals")
        assert_refuses_bad_pages(c, "/api/v1/approvals", status="approved")
    # The terminal walks the same pages.
    queue = cli_walk("approvals", "list", key=approver["api_key"], url=server.url, limit=2)
    assert [a["job_id"] for a in queue] == [*ids[1:], late]
    table = cli("approvals", "list", "--limit", 2, key=approver["api_key"], url=server.url)
    assert table.returncode == 0 and table.stdout.splitlines()[0].split()[0] == "APPROVAL"
    assert ids[1] in table.stdout and ids[3] not in table.stdout
    assert table.stderr.startswith("more: --cursor ")
    bad = cli("approvals", "list", "--cursor", "!!", key=approver["api_key"], url=server.url)
    assert bad.returncode == 1 and "invalid_cursor" in bad.stderr and "Traceback" not in bad.stderr
    assert cli("approvals", "list", "--limit", 0, key=approver["api_key"], url=server.url).returncode == 2


# ---- quarantine -------------------------------------------------------------------------------


def test_quarantine_pages_newest_first(server: Server) -> None:
    tenant = "pages-q"
    agent = server.identity("pgq-agent", tenant=tenant, roles=["agent"])
    worker = server.identity("pgq-worker", tenant=tenant, roles=["worker"], topics=["job.pgq.**"])
    reviewer = server.identity("pgq-reviewer", tenant=tenant, roles=["reviewer"])
    held = []
    with server.client(agent["api_key"]) as c, server.client(worker["api_key"]) as w:
        for n in range(5):
            held.append(
                c.post("/api/v1/jobs", json={"topic": "job.pgq.out", "prompt": str(n)}).json()["job_id"]
            )
        leased = w.post("/api/v1/worker/lease", json={"topics": ["job.pgq.**"], "max_jobs": 10}).json()
        assert {j["job_id"] for j in leased["jobs"]} == set(held)
        for job_id in held:
            r = w.post(
                f"/api/v1/worker/jobs/{job_id}/result", json={"status": "succeeded", "output": AWS_KEY}
            )
            assert r.json()["status"] == "quarantined", r.text
    with server.client(reviewer["api_key"]) as c:
        rows, pages = walk(c, "/api/v1/quarantine", "quarantine", 2)
        assert pages == 3 and [h["job_id"] for h in rows] == list(reversed(held))
        assert all(AWS_KEY not in json.dumps(h) for h in rows)  # masked on every page
        assert_refuses_bad_pages(c, "/api/v1/quarantine")
    listed = cli_walk("quarantine", "list", key=reviewer["api_key"], url=server.url, limit=2)
    assert [h["job_id"] for h in listed] == list(reversed(held))
    # `show` finds a held output past the first page.
    shown = cli("quarantine", "show", held[0], key=reviewer["api_key"], url=server.url)
    assert shown.returncode == 0 and json.loads(shown.stdout)["job_id"] == held[0], shown.stderr


# ---- identities -------------------------------------------------------------------------------


def test_identities_page_with_the_tenant_rules_of_the_whole_list(server: Server) -> None:
    tenant = "pages-idn"
    made = [server.identity(f"pgi-{n}", tenant=tenant)["id"] for n in range(6)]
    local = server.identity("pgi-admin", tenant=tenant, roles=["admin"])
    with server.client(local["api_key"]) as c:
        rows, pages = walk(c, "/api/v1/identities", "identities", 2)
        assert pages == 4 and [i["id"] for i in rows] == [*made, local["id"]]
        assert {i["tenant"] for i in rows} == {tenant}  # never another tenant's, on any page
        assert all("api_key" not in i for i in rows)
        assert_refuses_bad_pages(c, "/api/v1/identities")
        # A cursor of another listing is no cursor of this one.
        jobs_cursor = base64.urlsafe_b64encode(b"s5").decode().rstrip("=")
        r = c.get("/api/v1/identities", params={"cursor": jobs_cursor})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_cursor"
    with server.admin() as c:
        everyone, _ = walk(c, "/api/v1/identities", "identities", 3)
        ids = [i["id"] for i in everyone]
        assert len(ids) == len(set(ids)) and set(made) <= set(ids)
        assert {i["tenant"] for i in everyone} > {tenant}
        # Oldest first over every page.
        assert [i["created_at"] for i in everyone] == sorted(i["created_at"] for i in everyone)
    with server.client(ADMIN_KEY, tenant=tenant) as c:
        named, _ = walk(c, "/api/v1/identities", "identities", 4)
        assert [i["id"] for i in named] == [*made, local["id"]]
    # The terminal: `--json` prints the list as before; the next cursor goes to stderr.
    listed = cli_walk("identity", "list", key=local["api_key"], url=server.url, limit=3)
    assert [i["id"] for i in listed] == [*made, local["id"]]
    first = cli("identity", "list", "--limit", 3, key=local["api_key"], url=server.url)
    assert first.returncode == 0 and first.stdout.split()[:2] == ["ID", "NAME"]
    assert made[2] in first.stdout and made[3] not in first.stdout and "more: --cursor " in first.stderr
    # The SDK's `identities()` still answers every identity (it follows the pages).
    from gatehouse.client import Client

    with Client(server.url, api_key=local["api_key"]) as sdk:
        assert [i["id"] for i in sdk.identities()] == [*made, local["id"]]


# ---- incidents --------------------------------------------------------------------------------


def test_incidents_page_and_each_page_shows_only_what_the_caller_may_see(server: Server) -> None:
    tenant = "pages-inc"
    reviewer = server.identity("pgc-reviewer", tenant=tenant, roles=["reviewer"])
    contained = []
    with server.admin() as c:
        for n in range(5):
            r = c.post("/api/v1/incidents/contain", json={"adapter": f"pgc-tool-{n}", "reason": f"drill {n}"})
            assert r.status_code == 201, r.text
            contained.append(r.json()["id"])
            # Another tenant's containment, between ours: nobody of `tenant` sees it on any page.
            r = c.post(
                "/api/v1/incidents/contain", json={"tenant": f"pgc-other-{n}", "reason": "x", "force": True}
            )
            assert r.status_code == 201, r.text
        mine = c.post("/api/v1/incidents/contain", json={"tenant": tenant, "reason": "ours", "force": True})
        contained.append(mine.json()["id"])
        lifted = contained[1]
        assert c.post(f"/api/v1/incidents/{lifted}/lift").status_code == 200
    with server.client(reviewer["api_key"]) as c:
        active, pages = walk(c, "/api/v1/incidents", "incidents", 2)
        ids = [i["id"] for i in active]
        assert pages == 3 and ids == [x for x in contained if x != lifted]
        everything, _ = walk(c, "/api/v1/incidents", "incidents", 2, active="false")
        assert [i["id"] for i in everything] == contained
        assert not any(i["target"].startswith("pgc-other-") for i in everything)
        assert_refuses_bad_pages(c, "/api/v1/incidents")
    with server.admin() as c:
        every, _ = walk(c, "/api/v1/incidents", "incidents", 4, active="false")
        seen = [i["id"] for i in every]
        assert len(seen) == len(set(seen)) and set(contained) <= set(seen)
        assert sum(i["target"].startswith("pgc-other-") for i in every) == 5
    # The terminal pages the same list; the next cursor on stderr.
    first = cli("incident", "list", "--limit", 2, key=reviewer["api_key"], url=server.url)
    assert first.returncode == 0, first.stderr
    assert contained[0] in first.stdout and contained[2] in first.stdout and contained[3] not in first.stdout
    cursor = first.stderr.strip().removeprefix("more: --cursor ")
    nxt = cli("incident", "list", "--limit", 2, "--cursor", cursor, key=reviewer["api_key"], url=server.url)
    assert contained[3] in nxt.stdout and contained[4] in nxt.stdout and contained[0] not in nxt.stdout
    bad = cli("incident", "list", "--cursor", "nope", key=reviewer["api_key"], url=server.url)
    assert bad.returncode == 1 and "invalid_cursor" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize("path", ["/api/v1/approvals", "/api/v1/quarantine", "/api/v1/identities"])
def test_the_openapi_document_describes_the_pages(server: Server, path: str) -> None:
    doc = httpx.get(server.url + "/openapi.json").json()
    op = doc["paths"][path]["get"]
    params = {p["name"]: p for p in op["parameters"] if p["in"] == "query"}
    assert params["limit"]["schema"]["minimum"] == 1 and params["limit"]["schema"]["maximum"] == 500
    assert "cursor" in params
    ref = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert "next_cursor" in doc["components"]["schemas"][ref]["required"]

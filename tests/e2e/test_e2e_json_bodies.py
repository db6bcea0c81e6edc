"""Request bodies are JSON whatever `Content-Type` says, on every route (DESIGN.md section 5).

curl's `-d` sends `application/x-www-form-urlencoded`; the README's curls send no JSON header.
One representative POST per router, sent with no `Content-Type` and with the form one.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from harness import Server

AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
PROD = {"labels": {"env": "prod"}, "meta": {"capability": "infra.write"}}
FORM = "application/x-www-form-urlencoded"
CONTENT_TYPES = pytest.mark.parametrize("content_type", [None, FORM], ids=["no-content-type", "form"])


@pytest.fixture(scope="module")
def people(server: Server) -> dict[str, dict[str, Any]]:
    return {
        "agent": server.identity("body-agent", roles=["agent"]),
        "approver": server.identity("body-approver", roles=["approver"]),
        "reviewer": server.identity("body-reviewer", roles=["reviewer"]),
        "worker": server.identity("body-worker", roles=["worker"], topics=["job.lease.**"]),
    }


def post(c: httpx.Client, path: str, body: Any, content_type: str | None) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = c.post(path, content=raw, headers={"Content-Type": content_type} if content_type else {})
    if content_type is None:  # what curl without -H sends is what this test sends
        assert "content-type" not in r.request.headers
    return r


def submit(server: Server, key: str, body: dict[str, Any]) -> str:
    with server.client(key) as c:
        r = c.post("/api/v1/jobs", json=body)
        assert r.status_code == 201, r.text
        return str(r.json()["job_id"])


@CONTENT_TYPES
def test_create_identity(server: Server, content_type: str | None) -> None:
    body = {
        "name": f"curl-{content_type is None}",
        "tenant": "acme",
        "roles": ["agent"],
        "topics": ["job.**"],
    }
    with server.admin() as c:
        r = post(c, "/api/v1/identities", body, content_type)
    assert r.status_code == 201, r.text
    assert (r.json()["name"], r.json()["tenant"]) == (body["name"], "acme")
    assert r.json()["api_key"].startswith("ghk_")


@CONTENT_TYPES
def test_policy_simulate(server: Server, people: dict[str, Any], content_type: str | None) -> None:
    body = {"topic": "job.deploy.apply", "prompt": "terraform apply", **PROD}
    with server.client(people["agent"]["api_key"]) as c:
        r = post(c, "/api/v1/policy/simulate", body, content_type)
    assert r.status_code == 200, r.text
    assert (r.json()["decision"], r.json()["rule_id"]) == ("require_approval", "require-approval-prod-write")


@CONTENT_TYPES
def test_approve(server: Server, people: dict[str, Any], content_type: str | None) -> None:
    job_id = submit(
        server, people["agent"]["api_key"], {"topic": "job.deploy.apply", "prompt": "apply", **PROD}
    )
    with server.client(people["approver"]["api_key"]) as c:
        r = post(c, f"/api/v1/approvals/{job_id}/approve", {"comment": "change CHG-7"}, content_type)
    assert r.status_code == 200, r.text
    assert r.json()["token"]["claims"]["job_id"] == job_id
    assert server.wait_status(job_id, {"queued", "dispatched", "running"})["status"] != "pending_approval"


@CONTENT_TYPES
def test_quarantine_release(server: Server, people: dict[str, Any], content_type: str | None) -> None:
    job_id = submit(
        server, people["agent"]["api_key"], {"topic": "job.demo.echo", "prompt": f"key {AWS_KEY}"}
    )
    assert server.wait_status(job_id, {"quarantined"})["status"] == "quarantined"
    with server.client(people["reviewer"]["api_key"]) as c:
        r = post(
            c, f"/api/v1/quarantine/{job_id}/release", {"comment": "documented example key"}, content_type
        )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "succeeded"


@CONTENT_TYPES
def test_incident_contain(server: Server, content_type: str | None) -> None:
    tenant = "contain-none" if content_type is None else "contain-form"
    server.identity(f"{tenant}-agent", tenant=tenant, roles=["agent"])
    with server.admin() as c:
        r = post(c, "/api/v1/incidents/contain", {"tenant": tenant, "reason": "drill"}, content_type)
        assert r.status_code == 201, r.text
        assert c.post(f"/api/v1/incidents/{r.json()['id']}/lift").status_code == 200


@CONTENT_TYPES
def test_worker_lease(server: Server, people: dict[str, Any], content_type: str | None) -> None:
    job_id = submit(server, people["agent"]["api_key"], {"topic": "job.lease.one", "prompt": "x"})
    with server.client(people["worker"]["api_key"]) as c:
        r = post(c, "/api/v1/worker/lease", {"topics": ["job.lease.**"], "max_jobs": 1}, content_type)
    assert r.status_code == 200, r.text
    assert [j["job_id"] for j in r.json()["jobs"]] == [job_id]


@CONTENT_TYPES
@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/identities", b"name=bob&tenant=acme"),
        ("/api/v1/policy/simulate", b"topic=job.demo.read"),
        ("/api/v1/jobs", b"topic=job.demo.read"),
        ("/api/v1/policy/simulate", b'{"topic": "job.demo.read", "prompt": NaN}'),
        ("/api/v1/identities", rb'{"name": "\ud800", "tenant": "t", "roles": ["agent"]}'),
    ],
    ids=["form-identity", "form-simulate", "form-submit", "nan", "lone-surrogate"],
)
def test_a_body_that_is_not_json_is_400_invalid_json(
    server: Server, content_type: str | None, path: str, body: bytes
) -> None:
    with server.admin() as c:
        r = post(c, path, body, content_type)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_json"
    assert "must be JSON" in error["message"]


# The routes every tool call passes read their body themselves (`api.body.parse`, not FastAPI's
# dependency machinery): the same rules hold for them.
STEP_ROUTES = ["/api/v1/steps/evaluate", "/api/v1/steps/result", "/api/v1/adapters/mail/send"]


@CONTENT_TYPES
def test_a_step_is_evaluated_whatever_its_content_type(
    server: Server, people: dict[str, Any], content_type: str | None
) -> None:
    step = {
        "step_id": f"ct-{content_type is None}",
        "adapter": "mail",
        "action": "send",
        "params": {"to": "a@b.c"},
    }
    with server.client(people["agent"]["api_key"]) as c:
        r = post(c, "/api/v1/steps/evaluate", step, content_type)
        assert r.status_code == 200, r.text
        assert r.json()["step_id"] == step["step_id"] and r.json()["result"] in ("allow", "deny")
        # Its result, to the session the evaluation opened.
        done = {"session_id": r.json()["session_id"], "step_id": step["step_id"], "status": "failed"}
        r = post(c, "/api/v1/steps/result", done, content_type)
        assert r.status_code in (200, 409), r.text  # 409 when the gate did not allow the step


@pytest.mark.parametrize("path", STEP_ROUTES)
def test_a_step_route_applies_the_callers_rate_limit(server: Server, path: str) -> None:
    # One request a second, a burst of one: the second request at once is refused, before its
    # body is read (an invalid one would have been a 400 otherwise).
    slow = server.identity(f"body-slow-{path.rsplit('/', 1)[-1]}", roles=["agent"], rate_limit="1/1")
    with server.client(slow["api_key"]) as c:
        post(c, path, b"{}", None)
        r = post(c, path, b"not json", None)
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "rate_limited" and "retry-after" in r.headers


@pytest.mark.parametrize("path", STEP_ROUTES)
def test_a_step_route_authenticates_before_it_reads_the_body(server: Server, path: str) -> None:
    r = httpx.post(server.url + path, content=b"not json")
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"
    r = httpx.post(server.url + path, content=b"not json", headers={"X-API-Key": "ghk_wrong"})
    assert r.status_code == 401


def _json(body: Any) -> bytes:
    return json.dumps(body).encode()


# A body that is not JSON is a 400 `invalid_json`; JSON of the wrong shape a 422 whose code names
# the first field at fault (`invalid_step_id`, ...), as on every route.
@pytest.mark.parametrize("path", STEP_ROUTES)
@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"", 400, "invalid_json"),
        (b"step_id=s1&adapter=mail", 400, "invalid_json"),
        (b'{"step_id": "s1", "params": NaN}', 400, "invalid_json"),
        (b"[1, 2", 400, "invalid_json"),
        (_json({"adapter": "mail", "action": "send"}), 422, "invalid_"),
        (_json({"step_id": "s1", "nope": 1}), 422, "invalid_"),
        (_json({"step_id": ""}), 422, "invalid_"),
        (_json([1]), 422, "invalid_"),
    ],
    ids=[
        "empty",
        "form",
        "nan",
        "truncated",
        "no-step-id",
        "unknown-field",
        "empty-step-id",
        "not-an-object",
    ],
)
def test_a_bad_step_body_gets_a_clear_4xx(
    server: Server, people: dict[str, Any], path: str, body: bytes, status: int, code: str
) -> None:
    with server.client(people["agent"]["api_key"]) as c:
        r = post(c, path, body, FORM)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"].startswith(code) and error["message"], error

"""Bad input gets a clear 4xx with a machine-readable code, never a 500."""

from __future__ import annotations

import httpx
import pytest
from harness import Server


def _post_raw(server: Server, path: str, content: bytes, **headers: str) -> httpx.Response:
    with server.admin() as c:
        return c.post(path, content=content, headers={"Content-Type": "application/json", **headers})


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "invalid_json"),
        (b"[1, 2]", 422, "invalid_request"),
        (b'"a string"', 422, "invalid_request"),
        (b"{}", 422, "invalid_topic"),
        (b'{"topic": ""}', 422, "invalid_topic"),
        (b'{"topic": 42}', 422, "invalid_topic"),
        (b'{"topic": "job..x"}', 422, "invalid_topic"),
        (b'{"topic": "job.x!"}', 422, "invalid_topic"),
        (b'{"topic": "job x"}', 422, "invalid_topic"),
        (b'{"topic": ".job"}', 422, "invalid_topic"),
        (b'{"topic": "job.x", "prompt": 5}', 422, "invalid_prompt"),
        (b'{"topic": "job.x", "labels": ["a"]}', 422, "invalid_labels"),
        (b'{"topic": "job.x", "labels": {"env": 1}}', 422, "invalid_labels"),
        (b'{"topic": "job.x", "labels": {"env": {"a": "b"}}}', 422, "invalid_labels"),
        (b'{"topic": "job.x", "labels": {"bad key": "v"}}', 422, "invalid_labels"),
        (b'{"topic": "job.x", "meta": {"risk_tags": "change"}}', 422, "invalid_meta"),
        (b'{"topic": "job.x", "meta": {"capability": 3}}', 422, "invalid_meta"),
        (b'{"topic": "job.x", "attachments": [{"name": "a"}]}', 422, "invalid_attachments"),
        (b'{"topic": "job.x", "unknown": 1}', 422, "invalid_unknown"),
    ],
)
def test_malformed_job_bodies(server: Server, body: bytes, status: int, code: str) -> None:
    r = _post_raw(server, "/api/v1/jobs", body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code
    assert err["message"]


@pytest.mark.parametrize(
    "path",
    ["/api/v1/jobs", "/api/v1/policy/simulate", "/api/v1/policy/explain", "/api/v1/identities"],
)
@pytest.mark.parametrize(
    "body",
    [
        # Lone UTF-16 surrogates: legal for Python's json module, unstorable as UTF-8.
        rb'{"topic": "job.demo.echo", "prompt": "hi \ud800 there"}',
        rb'{"topic": "job.demo.echo", "labels": {"env": "\udfff"}}',
        rb'{"name": "\ud83d", "tenant": "t", "roles": ["agent"]}',
        b'{"topic": "job.demo.echo", "meta": {"risk_tags": [NaN]}}',
        b'{"topic": "job.demo.echo", "prompt": Infinity}',
    ],
    ids=["prompt-surrogate", "label-surrogate", "name-surrogate", "nan", "infinity"],
)
def test_json_that_json_forbids_is_400_not_500(server: Server, path: str, body: bytes) -> None:
    with server.admin() as c:
        before = c.get("/api/v1/jobs", params={"limit": 500}).json()["jobs"]
    r = _post_raw(server, path, body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_json"
    with server.admin() as c:  # and nothing half-written: the server is fine and stored nothing
        assert c.get("/api/v1/jobs", params={"limit": 500}).json()["jobs"] == before


def test_a_valid_surrogate_pair_is_an_ordinary_character(server: Server) -> None:
    r = _post_raw(server, "/api/v1/jobs", rb'{"topic": "job.demo.echo", "prompt": "ship it \ud83d\ude80"}')
    assert r.status_code == 201, r.text
    with server.admin() as c:
        assert c.get(f"/api/v1/jobs/{r.json()['job_id']}").json()["prompt"] == "ship it \U0001f680"


def test_too_many_labels(server: Server) -> None:
    with server.admin() as c:
        r = c.post("/api/v1/jobs", json={"topic": "job.x", "labels": {f"k{i}": "v" for i in range(65)}})
        assert r.status_code == 422
        assert r.json()["error"]["code"] == "too_many_labels"


def test_oversized_body_is_413(server: Server) -> None:
    big = b'{"topic": "job.x", "prompt": "' + b"a" * (1024 * 1024 + 10) + b'"}'
    r = _post_raw(server, "/api/v1/jobs", big)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"


def test_oversized_chunked_body_is_413(server: Server) -> None:
    def chunks():  # no Content-Length: the limit must hold while streaming
        yield b'{"topic": "job.x", "prompt": "'
        for _ in range(20):
            yield b"a" * 65536
        yield b'"}'

    with server.admin() as c:
        r = c.post("/api/v1/jobs", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413


def test_configurable_body_limit(server_factory) -> None:
    s = server_factory(None, "--max-body-bytes", "2048")
    r = _post_raw(s, "/api/v1/jobs", b'{"topic": "job.x", "prompt": "' + b"a" * 3000 + b'"}')
    assert r.status_code == 413


def test_authentication_errors(server: Server) -> None:
    r = httpx.post(server.url + "/api/v1/jobs", json={"topic": "job.x"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "missing_api_key"
    r = httpx.post(server.url + "/api/v1/jobs", json={"topic": "job.x"}, headers={"X-API-Key": "nope"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_api_key"


def test_unknown_routes_and_methods(server: Server) -> None:
    with server.admin() as c:
        r = c.get("/api/v1/nothing")
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "route_not_found"
        r = c.delete("/api/v1/jobs")
        assert r.status_code == 405
        assert r.json()["error"]["code"] == "method_not_allowed"
        r = c.get("/api/v1/jobs/job_doesnotexist")
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "job_not_found"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"name": "x", "roles": ["root"]}, "invalid_roles"),
        ({"name": "x", "roles": []}, "invalid_roles"),
        ({"name": "x", "tenant": "Bad Tenant"}, "invalid_tenant"),
        ({"name": "x", "topics": ["job..x"]}, "invalid_topics"),
        ({"name": ""}, "invalid_name"),
        ({"roles": ["agent"]}, "invalid_name"),
    ],
)
def test_bad_identity_bodies(server: Server, body: dict, code: str) -> None:
    with server.admin() as c:
        r = c.post("/api/v1/identities", json=body)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == code


def test_bad_policy_is_refused_with_its_line_and_the_running_one_stays(server: Server) -> None:
    with server.admin() as c:
        before = c.get("/api/v1/policy").json()["snapshot"]
        bundle = "version: 1\nrules:\n  - id: r1\n    decision: maybe\n"
        r = c.put("/api/v1/policy", json={"bundle": bundle})
        assert r.status_code == 422
        err = r.json()["error"]
        assert err["code"] == "policy_invalid"
        assert err["details"]["line"] == 4
        assert err["details"]["rule_id"] == "r1"
        assert c.get("/api/v1/policy").json()["snapshot"] == before
        r = c.put("/api/v1/policy", json={"bundle": ""})
        assert r.status_code == 422


def test_worker_endpoints_refuse_non_workers(server: Server) -> None:
    agent = server.identity("not-a-worker")
    with server.client(agent["api_key"]) as c:
        r = c.post("/api/v1/worker/lease", json={"topics": ["job.**"]})
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "missing_role"
    worker = server.identity("w-bad", roles=["worker"])
    with server.client(worker["api_key"]) as c:
        r = c.post("/api/v1/worker/lease", json={"topics": ["job..bad"]})
        assert r.status_code == 422
        r = c.post("/api/v1/worker/lease", json={"topics": []})
        assert r.status_code == 422
        r = c.post("/api/v1/worker/jobs/job_missing/result", json={"status": "succeeded"})
        assert r.status_code == 404
        r = c.post("/api/v1/worker/jobs/job_missing/result", json={"status": "weird"})
        assert r.status_code == 422


def test_openapi_documents_the_submit_body(server: Server) -> None:
    spec = httpx.get(f"{server.url}/openapi.json").json()
    body = spec["paths"]["/api/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    name = body["$ref"].rsplit("/", 1)[-1]
    schema = spec["components"]["schemas"][name]
    assert schema["required"] == ["topic"]
    fields = {"topic", "prompt", "labels", "meta", "attachments", "idempotency_key"}
    assert fields <= set(schema["properties"])
    meta_ref = schema["properties"]["meta"]["$ref"].rsplit("/", 1)[-1]
    assert "capability" in spec["components"]["schemas"][meta_ref]["properties"]


def test_an_overlong_idempotency_key_header_is_refused(server: Server) -> None:
    r = _post_raw(server, "/api/v1/jobs", b'{"topic": "job.demo.echo"}', **{"Idempotency-Key": "k" * 129})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_idempotency_key"


def test_openapi_documents_the_idempotency_header(server: Server) -> None:
    spec = httpx.get(f"{server.url}/openapi.json").json()
    params = spec["paths"]["/api/v1/jobs"]["post"]["parameters"]
    assert [p["name"] for p in params] == ["Idempotency-Key", "X-Tenant-ID"]


def test_the_lean_submit_route_answers_errors_like_every_other_route(server: Server) -> None:
    """POST /api/v1/jobs is served by a plain Starlette route (no FastAPI dependency
    resolution); authentication, error mapping and request ids must not notice."""
    with httpx.Client(base_url=server.url) as c:
        r = c.post("/api/v1/jobs", json={"topic": "job.demo.echo"}, headers={"X-Request-ID": "req-lean-1"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"
        assert r.headers["x-request-id"] == "req-lean-1"
        r = c.post("/api/v1/jobs", json={"topic": "job.demo.echo"}, headers={"X-API-Key": "ghk_nope"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        assert c.put("/api/v1/jobs", json={}).status_code == 405

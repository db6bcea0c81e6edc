"""The OpenAPI document of a running server: valid, complete, and true.

Valid: `openapi-spec-validator` accepts it. Complete: every operation has a success schema, the
real error shape for each error status, and the security scheme when it needs a key. True: the
answers of a real server, over a flow that touches every main route, match the schemas the
document gives for their status.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from harness import ADMIN_KEY, Server
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

PUBLIC = {
    "GET /healthz",
    "GET /readyz",
    "GET /metrics",
    "GET /.well-known/jwks.json",
    "POST /api/v1/credentials/introspect",
}


@pytest.fixture(scope="module")
def spec(server: Server) -> dict[str, Any]:
    r = httpx.get(f"{server.url}/openapi.json")
    assert r.status_code == 200
    return dict(r.json())


def _operations(spec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(f"{m.upper()} {p}", op) for p, ops in spec["paths"].items() for m, op in ops.items()]


def test_the_document_is_a_valid_openapi_document(spec: dict[str, Any]) -> None:
    validate(spec)  # raises on any violation of the OpenAPI 3.1 schema
    assert spec["openapi"].startswith("3.1")
    assert len(spec["paths"]) >= 40


def test_every_operation_has_a_success_schema(spec: dict[str, Any]) -> None:
    missing = []
    for key, op in _operations(spec):
        if key == "GET /metrics":
            continue  # Prometheus text, not JSON
        ok = [s for s in op["responses"] if s.startswith("2")]
        schemas = [
            op["responses"][s].get("content", {}).get("application/json", {}).get("schema") for s in ok
        ]
        if not ok or not all(s and s.get("$ref") for s in schemas):
            missing.append(key)
    assert missing == []


def test_errors_have_the_real_shape_and_their_codes(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas  # FastAPI's `{"detail": [...]}`, never sent
    error = schemas["ErrorDetail"]
    assert set(error["required"]) == {"code", "message", "details"}
    for key, op in _operations(spec):
        for status, response in op["responses"].items():
            if status[0] not in "45" or key == "GET /readyz":  # its 503 is a status, not an error
                continue
            body = response["content"]["application/json"]
            assert body["schema"]["allOf"][0] == {"$ref": "#/components/schemas/ErrorBody"}, key
            assert "`error.code` is one of" in response["description"], key
    submit = dict(_operations(spec))["POST /api/v1/jobs"]["responses"]
    assert {"200", "201", "400", "401", "403", "409", "413", "422", "429"} <= set(submit)
    assert "`denied`" in submit["403"]["description"]
    assert "`idempotency_key_reused`" in submit["409"]["description"]
    approve = dict(_operations(spec))["POST /api/v1/approvals/{job_id}/approve"]["responses"]
    assert "`self_approval`" in approve["403"]["description"]


def test_the_api_key_security_scheme(spec: dict[str, Any], server: Server) -> None:
    schemes = spec["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {**schemes["ApiKey"], "type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert schemes["Bearer"]["type"] == "http" and schemes["Bearer"]["scheme"] == "bearer"
    for key, op in _operations(spec):
        if key in PUBLIC:
            assert op["security"] == [], key
        else:
            assert op["security"] == [{"ApiKey": []}, {"Bearer": []}], key
            assert "401" in op["responses"], key
    # Both documented ways work, and the absence of either is the documented 401.
    r = httpx.get(f"{server.url}/api/v1/whoami", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert r.status_code == 200
    r = httpx.get(f"{server.url}/api/v1/whoami")
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"


def _check(spec: dict[str, Any], key: str, r: httpx.Response) -> None:
    """Validate `r` against the schema the document gives `key` for r's status."""
    method, path = key.split(" ", 1)
    responses = spec["paths"][path][method.lower()]["responses"]
    assert str(r.status_code) in responses, (key, r.status_code, r.text[:300])
    schema = responses[str(r.status_code)]["content"]["application/json"]["schema"]
    validator = Draft202012Validator({**schema, "components": spec["components"]})
    problems = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(r.json())
    ]
    assert problems == [], (key, r.status_code, problems)


def test_real_answers_match_the_documented_schemas(spec: dict[str, Any], server: Server) -> None:
    agent = server.identity("oa-agent", roles=["agent"])
    approver = server.identity("oa-approver", roles=["approver"])
    with (
        server.admin() as admin,
        server.client(agent["api_key"]) as bot,
        server.client(approver["api_key"]) as ap,
    ):

        def call(client: httpx.Client, key: str, url: str, **kw: Any) -> Any:
            r = client.request(key.split(" ")[0], url, **kw)
            _check(spec, key, r)
            return r.json()

        call(admin, "GET /api/v1/whoami", "/api/v1/whoami")
        call(admin, "GET /api/v1/identities", "/api/v1/identities")
        job = call(bot, "POST /api/v1/jobs", "/api/v1/jobs", json={"topic": "job.demo.read", "prompt": "hi"})
        call(bot, "POST /api/v1/jobs", "/api/v1/jobs", json={"topic": "job.exec.shell", "prompt": "rm -rf /"})
        prod = {"topic": "job.deploy.apply", "prompt": "terraform apply", "labels": {"env": "prod"},
                "meta": {"capability": "infra.write"}}  # fmt: skip
        held = call(bot, "POST /api/v1/jobs", "/api/v1/jobs", json=prod)
        call(admin, "GET /api/v1/jobs", "/api/v1/jobs", params={"limit": 2})
        call(admin, "GET /api/v1/jobs/{job_id}", f"/api/v1/jobs/{job['job_id']}")
        call(admin, "GET /api/v1/jobs/{job_id}", "/api/v1/jobs/job_nope")
        call(admin, "GET /api/v1/jobs/{job_id}/decisions", f"/api/v1/jobs/{job['job_id']}/decisions")
        queue = call(ap, "GET /api/v1/approvals", "/api/v1/approvals")
        call(admin, "GET /api/v1/approvals", "/api/v1/approvals")  # 403 missing_role
        call(
            ap,
            "GET /api/v1/approvals/{approval_id}",
            f"/api/v1/approvals/{queue['approvals'][0]['approval_id']}",
        )
        call(
            bot,
            "POST /api/v1/approvals/{job_id}/approve",
            f"/api/v1/approvals/{held['job_id']}/approve",
            json={},
        )
        call(
            ap,
            "POST /api/v1/approvals/{job_id}/approve",
            f"/api/v1/approvals/{held['job_id']}/approve",
            json={},
        )
        call(
            ap,
            "POST /api/v1/approvals/{job_id}/reject",
            f"/api/v1/approvals/{held['job_id']}/reject",
            json={},
        )
        call(admin, "POST /api/v1/jobs/{job_id}/cancel", f"/api/v1/jobs/{held['job_id']}/cancel")
        page = call(admin, "GET /api/v1/decisions", "/api/v1/decisions", params={"limit": 3})
        call(admin, "GET /api/v1/decisions", "/api/v1/decisions", params={"stage": "nope"})
        call(
            admin,
            "GET /api/v1/decisions/{decision_id}",
            f"/api/v1/decisions/{page['decisions'][0]['decision_id']}",
        )
        call(admin, "GET /api/v1/policy", "/api/v1/policy")
        call(bot, "GET /api/v1/policy", "/api/v1/policy")
        body = {"topic": "job.exec.shell", "prompt": "rm -rf /"}
        call(admin, "POST /api/v1/policy/simulate", "/api/v1/policy/simulate", json=body)
        call(admin, "POST /api/v1/policy/explain", "/api/v1/policy/explain", json=body)
        call(admin, "POST /api/v1/policy/explain", "/api/v1/policy/explain", content=b"topic=x")
        # The shadow bundle: judged beside the live one (the submit below disagrees), then removed.
        live = admin.get("/api/v1/policy").json()["bundle"]
        shadow = live.replace("rules:\n", 'rules:\n  - id: oa-deny\n    decision: deny\n'
                              '    match: {topics: ["job.oa.**"]}\n', 1)  # fmt: skip
        call(admin, "GET /api/v1/policy/shadow", "/api/v1/policy/shadow")
        call(bot, "PUT /api/v1/policy/shadow", "/api/v1/policy/shadow", json={"bundle": shadow})
        call(admin, "PUT /api/v1/policy/shadow", "/api/v1/policy/shadow", json={"bundle": "rules: 3"})
        call(admin, "PUT /api/v1/policy/shadow", "/api/v1/policy/shadow", json={"bundle": shadow})
        call(admin, "GET /api/v1/policy/shadow", "/api/v1/policy/shadow")
        assert admin.post("/api/v1/jobs", json={"topic": "job.oa.x", "prompt": "p"}).status_code == 201
        for _ in range(100):
            found = call(admin, "GET /api/v1/policy/shadow/diff", "/api/v1/policy/shadow/diff")
            if found["count"]:
                break
            time.sleep(0.05)
        assert found["count"] == 1
        call(admin, "GET /api/v1/policy/shadow/diff", "/api/v1/policy/shadow/diff", params={"limit": 0})
        call(admin, "DELETE /api/v1/policy/shadow", "/api/v1/policy/shadow")
        call(admin, "DELETE /api/v1/policy/shadow", "/api/v1/policy/shadow")
        call(admin, "GET /api/v1/quarantine", "/api/v1/quarantine")
        inc = call(admin, "POST /api/v1/incidents/contain", "/api/v1/incidents/contain",
                   json={"identity": agent["id"], "reason": "test"})  # fmt: skip
        call(admin, "GET /api/v1/incidents", "/api/v1/incidents")
        call(
            admin, "POST /api/v1/incidents/{incident_id}/lift", f"/api/v1/incidents/{inc['id']}/lift", json={}
        )
        session = call(bot, "POST /api/v1/sessions", "/api/v1/sessions", json={"task": "read a file"})
        step = {"session_id": session["session_id"], "step_id": "s1", "adapter": "fs", "action": "read",
                "params": {"path": "/tmp/x"}}  # fmt: skip
        call(bot, "POST /api/v1/steps/evaluate", "/api/v1/steps/evaluate", json=step)
        call(bot, "POST /api/v1/steps/result", "/api/v1/steps/result",
             json={"session_id": session["session_id"], "step_id": "s1", "status": "succeeded"})  # fmt: skip
        call(bot, "GET /api/v1/sessions/{session_id}", f"/api/v1/sessions/{session['session_id']}")
        call(admin, "GET /api/v1/adapters", "/api/v1/adapters")
        call(admin, "PUT /api/v1/secrets/{name}", "/api/v1/secrets/oa-db", json={"value": "s3cret"})
        call(admin, "GET /api/v1/secrets", "/api/v1/secrets")
        call(admin, "DELETE /api/v1/secrets/{name}", "/api/v1/secrets/oa-db")
        call(admin, "GET /api/v1/audit", "/api/v1/audit", params={"limit": 2})
        call(admin, "GET /api/v1/audit/verify", "/api/v1/audit/verify")
        call(admin, "GET /api/v1/audit/streams", "/api/v1/audit/streams")
        call(bot, "GET /api/v1/audit/streams", "/api/v1/audit/streams")
        call(admin, "GET /.well-known/jwks.json", "/.well-known/jwks.json")
        call(admin, "POST /api/v1/worker/lease", "/api/v1/worker/lease", json={"topics": ["job.none"]})
        call(admin, "DELETE /api/v1/identities/{identity_id}", f"/api/v1/identities/{agent['id']}")
        call(bot, "GET /api/v1/jobs", "/api/v1/jobs")  # 401 invalid_api_key: the key is revoked

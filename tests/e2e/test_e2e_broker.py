"""The broker's execution route against a real `gatehouse serve` and a real target service on
loopback (`broker_target.Target`, which counts the connections made to it):

- an allowed call runs with the stored secret injected, and the agent sees its output but never
  the secret, even from an upstream that echoes the Authorization header back (JSON, escaped,
  plain text, error bodies); audit, logs, metrics and answers hold no secret value;
- a param that breaks the schema is denied before any traffic (no connection);
- egress: a name that resolves to loopback, a redirect to an unlisted port, host or IP literal
  and a non-http(s) redirect are each refused (403 `egress_denied`, audited, counted) with no
  connection made to the forbidden address;
- minted tokens verify against the JWKS and introspection; a revoked one and an expired one are
  refused by the target; containment revokes them and refuses execution before any traffic;
- a 50 MiB answer is cut off (502 `response_too_large`), a slow one times out (504);
- path traversal and CR/LF header injection are refused; kinds `external` and `mcp` are 409
  `not_executable`; unknown adapters and actions 404;
- a write waits for approval (202), the identical call after approval runs once.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from broker_target import Target
from harness import Server, free_port

SECRET = "sv_live_9f8e7d6c5b4a3210SECRETvalue"


def _bundle(port: int) -> str:
    here = f"http://127.0.0.1:{port}"
    return textwrap.dedent(f"""\
        version: 1
        name: broker-e2e
        default_decision: deny
        adapters:
          svc:
            kind: http
            base_url: {here}
            egress: ["{here}"]
            credential: {{secret: svc_token, header: Authorization, format: "Bearer {{secret}}"}}
            actions:
              list_issues:
                method: GET
                path: /repos/{{owner}}/{{repo}}/issues
                params: {{type: object, properties: {{owner: {{type: string, maxLength: 40}},
                         repo: {{type: string}}, state: {{type: string}}}},
                         required: [owner, repo], additionalProperties: false}}
                effect: read
              item: {{method: GET, path: "/items/{{id}}", effect: read,
                      params: {{type: object, properties: {{id: {{type: string}}}}, required: [id]}}}}
              create: {{method: POST, path: /items, body: params, effect: write}}
              echo: {{method: GET, path: /echo, effect: read}}
              fail: {{method: GET, path: /fail, effect: read}}
              big: {{method: GET, path: /big, effect: read}}
              redirect: {{method: GET, path: /redirect, effect: read,
                          params: {{type: object, properties: {{to: {{type: string}}}}}}}}
              slow: {{method: GET, path: /slow, effect: read}}
          billing:
            kind: http
            base_url: {here}
            egress: ["{here}"]
            credential: {{mint: true, audience: billing, ttl: 5m, header: Authorization,
                          format: "Bearer {{token}}"}}
            actions:
              whoami: {{method: GET, path: /whoami, effect: read}}
          byname:
            kind: http
            base_url: http://localhost:{port}
            egress: ["http://localhost:{port}"]
            actions:
              ping: {{method: GET, path: /echo, effect: read}}
          bank:
            kind: external
            actions:
              get_balance: {{effect: read}}
        rules:
          - id: allow-reads
            decision: allow
            reason: "reads are fine"
            match: {{targets: ["adapter:*:*"]}}
            conditions: [{{eq: {{effect: read}}}}]
          - id: approve-writes
            decision: require_approval
            reason: "a write needs a person"
            match: {{targets: ["adapter:*:*"]}}
            conditions: [{{eq: {{effect: write}}}}]
        """)


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    t = Target(secret=SECRET).start(free_port())
    yield t
    t.stop()


@pytest.fixture(scope="module")
def other() -> Iterator[Target]:
    """A second service, on a port no egress entry lists: it must never be reached."""
    t = Target(secret=SECRET).start(free_port())
    yield t
    t.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, target: Target) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("broker")
    policy = root / "bundle.yaml"
    policy.write_text(_bundle(target.port))
    s = Server(data_dir=root / "data", policy=policy, env={"GATEHOUSE_BROKER_TIMEOUT": "2"}).start()
    target.gatehouse = s.url
    with s.admin() as c:
        r = c.put("/api/v1/secrets/svc_token", json={"value": SECRET})
        assert r.status_code == 201, r.text
    yield s
    s.stop()


@pytest.fixture(scope="module")
def agent(server: Server) -> str:
    key: str = server.identity("broker-agent", tenant="default", roles=["agent"], adapters=["*"])["api_key"]
    return key


def call(server: Server, key: str, adapter: str, action: str, step_id: str, params: Any = None,
         session_id: str | None = None) -> httpx.Response:  # fmt: skip
    body: dict[str, Any] = {"step_id": step_id, "params": params or {}}
    if session_id is not None:
        body["session_id"] = session_id
    with server.client(key) as c:
        return c.post(f"/api/v1/adapters/{adapter}/{action}", json=body)


def code(r: httpx.Response) -> str:
    value: str = r.json()["error"]["code"]
    return value


def test_an_allowed_call_runs_with_the_secret_the_agent_never_sees(
    server: Server, agent: str, target: Target
) -> None:
    r = call(
        server, agent, "svc", "list_issues", "ok-1", {"owner": "acme co", "repo": "widgets", "state": "open"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["status"], body["http_status"], body["decision"]["decision"]) == ("succeeded", 200, "allow")
    assert body["output"]["issues"] == [{"id": 1, "title": "a bug"}]
    assert body["output"]["owner"] == "acme co" and body["output"]["query"] == "state=open"
    assert body["latency_ms"] > 0 and body["decision"]["step_id"] == "ok-1"
    seen = target.requests[-1]
    assert seen["raw_path"] == "/repos/acme%20co/widgets/issues"
    assert seen["headers"]["authorization"] == f"Bearer {SECRET}"  # the target got it ...
    assert SECRET not in r.text  # ... the agent did not
    with server.client(agent) as c:
        session = c.get(f"/api/v1/sessions/{body['session_id']}").json()
    assert [s["status"] for s in session["steps"]] == ["succeeded"]


@pytest.mark.parametrize("how", ["json", "text", "error"])
def test_an_upstream_that_echoes_the_secret_is_scrubbed(server: Server, agent: str, how: str) -> None:
    action, params = {"json": ("echo", {}), "text": ("echo", {"as": "text"}), "error": ("fail", {})}[how]
    r = call(server, agent, "svc", action, f"echo-{how}", params)
    assert r.status_code == 200, r.text
    assert SECRET not in r.text and "[REDACTED]" in r.text
    if how == "json":
        out = r.json()["output"]
        assert out["headers"]["authorization"] == "Bearer [REDACTED]"
        assert SECRET not in out["escaped"]  # `\u`-escaped in the JSON, scrubbed once decoded
    if how == "error":
        assert (r.json()["status"], r.json()["http_status"]) == ("failed", 500)


def test_a_param_breaking_the_schema_is_denied_before_any_traffic(
    server: Server, agent: str, target: Target
) -> None:
    before = target.connections
    r = call(server, agent, "svc", "list_issues", "schema-1", {"owner": "x" * 41, "repo": "r"})
    assert r.status_code == 403, r.text
    assert code(r) == "step_denied" and r.json()["decision"]["rule_id"] == "param_schema"
    r = call(server, agent, "svc", "list_issues", "schema-2", {"owner": "o", "repo": "r", "admin": True})
    assert r.status_code == 403 and r.json()["decision"]["rule_id"] == "param_schema"
    assert target.connections == before


def test_path_traversal_and_header_injection_are_refused(server: Server, agent: str, target: Target) -> None:
    before = len(target.requests)
    for i, bad in enumerate(["..", "a/../../admin", "a\\b", "."]):
        r = call(server, agent, "svc", "item", f"trav-{i}", {"id": bad})
        assert r.status_code == 422 and code(r) == "path_traversal", r.text
    r = call(server, agent, "svc", "item", "crlf-1", {"id": "x HTTP/1.1\r\nX-Injected: 1"})
    assert r.status_code == 422 and code(r) == "header_injection", r.text
    assert len(target.requests) == before
    # Encoded, never decoded by the broker: `%2F` stays `%252F`, one segment.
    r = call(server, agent, "svc", "item", "enc-1", {"id": "a%2F..%2Fadmin"})
    assert r.status_code == 200 and target.requests[-1]["raw_path"] == "/items/a%252F..%252Fadmin"
    # A secret holding CR/LF would split the request: refused, the value never quoted.
    with server.admin() as c:
        c.put("/api/v1/secrets/svc_token", json={"value": "abc\r\nX-Evil: 1"})
    try:
        before = target.connections
        r = call(server, agent, "svc", "echo", "crlf-2")
        assert r.status_code == 422 and code(r) == "header_injection", r.text
        assert "X-Evil" not in r.text and target.connections == before
    finally:
        with server.admin() as c:
            c.put("/api/v1/secrets/svc_token", json={"value": SECRET})


def test_egress_refusals_never_reach_the_forbidden_address(
    server: Server, agent: str, target: Target, other: Target
) -> None:
    # A name that resolves to loopback, which no entry names as an address.
    before = target.connections
    r = call(server, agent, "byname", "ping", "eg-1")
    assert r.status_code == 403 and code(r) == "egress_denied", r.text
    assert r.json()["error"]["details"]["reason"] == "blocked_address"
    assert target.connections == before
    # Redirects to an unlisted port, an unlisted name, an unlisted IP literal, another scheme.
    cases = {
        f"http://127.0.0.1:{other.port}/echo": "ip_literal",
        f"http://localhost:{other.port}/echo": "unlisted_destination",
        f"http://127.0.0.2:{target.port}/echo": "ip_literal",
        "file:///etc/passwd": "bad_url",
        "gopher://127.0.0.1:70/x": "bad_url",
    }
    for i, (to, reason) in enumerate(cases.items()):
        r = call(server, agent, "svc", "redirect", f"eg-r{i}", {"to": to})
        assert r.status_code == 403 and code(r) == "egress_denied", (to, r.text)
        assert r.json()["error"]["details"]["reason"] == reason, (to, r.text)
        assert SECRET not in r.text
    assert other.connections == 0
    # A redirect within the list is followed (checked again on the way).
    r = call(server, agent, "svc", "redirect", "eg-ok", {"to": "/echo"})
    assert r.status_code == 200 and r.json()["output"]["headers"]["authorization"] == "Bearer [REDACTED]"
    metrics = httpx.get(server.metrics_url).text
    assert 'gatehouse_egress_denied_total{adapter="svc"} 5.0' in metrics
    assert 'gatehouse_egress_denied_total{adapter="byname"} 1.0' in metrics
    with server.client(agent) as c:
        session = c.get(f"/api/v1/sessions/{r.json()['session_id']}").json()
        assert session["steps"][0]["status"] == "succeeded"


def test_a_huge_or_slow_answer_is_cut_off(server: Server, agent: str) -> None:
    r = call(server, agent, "svc", "big", "big-1")
    assert r.status_code == 502 and code(r) == "response_too_large", r.text
    assert "cut off" in r.json()["error"]["message"]
    sid = r.json()["error"]["details"]["session_id"]
    r = call(server, agent, "svc", "slow", "slow-1")
    assert r.status_code == 504 and code(r) == "upstream_timeout", r.text
    # The failed call is the step's result: the same step id does not run again.
    again = call(server, agent, "svc", "big", "big-1", session_id=sid)
    assert again.status_code == 409 and code(again) == "step_executed", again.text
    with server.client(agent) as c:
        step = c.get(f"/api/v1/sessions/{sid}").json()["steps"][0]
    assert step["status"] == "failed"


def test_minted_tokens_verify_and_revoked_or_expired_ones_are_refused(
    server: Server, agent: str, target: Target
) -> None:
    r = call(server, agent, "billing", "whoami", "mint-1")
    assert r.status_code == 200, r.text
    claims = r.json()["output"]
    sid = r.json()["session_id"]
    assert claims["aud"] == "billing" and claims["act"] == "adapter:billing:whoami" and claims["sid"] == sid
    assert 290 <= claims["exp"] - claims["iat"] <= 300
    token = target.tokens[-1]
    assert token not in r.text
    # A second call mints a fresh token.
    r2 = call(server, agent, "billing", "whoami", "mint-2", session_id=sid)
    assert r2.status_code == 200 and target.tokens[-1] != token
    with httpx.Client(base_url=f"http://127.0.0.1:{target.port}") as t:
        assert t.get("/whoami", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        # Presented after its lifetime: the target refuses it on its own clock.
        target.clock_skew = 301
        assert t.get("/whoami", headers={"Authorization": f"Bearer {token}"}).json() == {"error": "expired"}
        target.clock_skew = 0
        with server.admin() as c:
            revoked = c.post("/api/v1/credentials/revoke", json={"jti": claims["jti"]}).json()
        assert revoked["revoked"] == 1
        assert t.get("/whoami", headers={"Authorization": f"Bearer {token}"}).json() == {"error": "inactive"}


def test_containment_revokes_and_refuses_execution_before_any_traffic(
    server: Server, agent: str, target: Target
) -> None:
    r = call(server, agent, "billing", "whoami", "cont-1")
    assert r.status_code == 200, r.text
    token, sid = target.tokens[-1], r.json()["session_id"]
    # A step allowed before the incident, not yet executed.
    with server.client(agent) as c:
        step = {"session_id": sid, "step_id": "cont-2", "adapter": "billing", "action": "whoami"}
        ev = c.post("/api/v1/steps/evaluate", json=step)
        assert ev.json()["decision"] == "allow"
    with server.admin() as c:
        inc = c.post("/api/v1/incidents/contain", json={"adapter": "billing", "reason": "drill"}).json()
        assert c.post("/api/v1/credentials/introspect", json={"token": token}).json() == {"active": False}
    try:
        before = target.connections
        r = call(server, agent, "billing", "whoami", "cont-3")
        assert r.status_code == 403 and r.json()["decision"]["rule_id"] == "incident_containment", r.text
        r = call(server, agent, "Billing", "whoami", "cont-4")  # adapter names fold case
        assert r.status_code == 403 and r.json()["decision"]["rule_id"] == "incident_containment", r.text
        r = call(server, agent, "billing", "whoami", "cont-2", session_id=sid)  # the step allowed before
        assert r.status_code == 403 and code(r) == "incident_containment", r.text
        assert target.connections == before
    finally:
        with server.admin() as c:
            assert c.post(f"/api/v1/incidents/{inc['id']}/lift").status_code == 200
    assert call(server, agent, "billing", "whoami", "cont-5", session_id=sid).status_code == 200


def test_a_write_waits_for_approval_and_the_identical_call_runs_once(
    server: Server, agent: str, target: Target
) -> None:
    params = {"name": "new widget"}
    r = call(server, agent, "svc", "create", "w-1", params)
    assert r.status_code == 202, r.text
    approval_id, sid = r.json()["approval_id"], r.json()["session_id"]
    assert r.json()["status"] == "pending_approval"
    before = len(target.requests)
    assert call(server, agent, "svc", "create", "w-1", params, session_id=sid).status_code == 202
    approver = server.identity("broker-approver", tenant="default", roles=["approver"])["api_key"]
    with server.client(approver) as c:
        assert c.post(f"/api/v1/approvals/{approval_id}/approve").status_code == 200, approval_id
    changed = call(server, agent, "svc", "create", "w-1", {"name": "other"}, session_id=sid)
    assert changed.status_code == 409 and code(changed) == "step_conflict"
    ran = call(server, agent, "svc", "create", "w-1", params, session_id=sid)
    assert ran.status_code == 200, ran.text
    assert ran.json()["http_status"] == 201 and ran.json()["output"] == {"created": params}
    again = call(server, agent, "svc", "create", "w-1", params, session_id=sid)
    assert again.status_code == 409 and code(again) == "step_executed"
    assert len(target.requests) == before + 1


def test_bad_calls_get_stable_codes(server: Server, agent: str) -> None:
    assert code(call(server, agent, "nope", "x", "b-1")) == "adapter_not_found"
    assert code(call(server, agent, "svc", "nope", "b-2")) == "unknown_action"
    r = call(server, agent, "bank", "get_balance", "b-3")
    assert r.status_code == 409 and code(r) == "not_executable"
    r = call(server, agent, "svc", "echo", "b-4", [1, 2])
    assert r.status_code == 422 and code(r) == "invalid_params"
    r = call(server, agent, "svc", "echo", "b-5", {"q": "x" * 300_000})
    assert r.status_code == 413
    with server.client(agent) as c:
        r = c.post("/api/v1/adapters/svc/echo", json={"params": {}})
        assert r.status_code == 422  # no step id
    narrow = server.identity("broker-narrow", tenant="default", roles=["agent"], adapters=["svc:echo"])
    r = call(server, narrow["api_key"], "billing", "whoami", "b-6")
    assert r.status_code == 403 and r.json()["decision"]["rule_id"] == "identity_scope"


def test_no_secret_in_audit_logs_or_metrics(server: Server, agent: str) -> None:
    r = call(server, agent, "svc", "list_issues", "audit-1", {"owner": "o", "repo": "private-repo-name"})
    assert r.status_code == 200
    # A refused call of its own (the test does not lean on an earlier one having been made).
    r = call(server, agent, "svc", "redirect", "audit-2", {"to": "gopher://127.0.0.1:70/x"})
    assert r.status_code == 403 and code(r) == "egress_denied"
    with server.admin() as c:
        audit = c.get("/api/v1/audit", params={"limit": 1000}).json()
    calls = [e for e in audit["entries"] if e["type"] == "adapter.call"]
    mine = next(e["data"] for e in calls if e["data"]["step_id"] == "audit-1")
    assert mine["adapter"] == "svc" and mine["action"] == "list_issues" and mine["status"] == "succeeded"
    assert mine["http_status"] == 200 and mine["latency_ms"] > 0
    assert mine["params_schema"] == {"owner": "string", "repo": "string"}
    assert mine["credential"] == {"kind": "secret", "name": "svc_token"}
    refused = next(e["data"] for e in calls if e["data"]["step_id"] == "audit-2")
    assert refused["error"] == "egress_denied" and refused["status"] == "failed"
    text = str(audit)
    assert SECRET not in text and "private-repo-name" not in text
    assert SECRET not in httpx.get(server.metrics_url).text
    assert SECRET not in server.log()
    assert (
        'gatehouse_adapter_calls_total{adapter="svc",status="succeeded"}'
        in httpx.get(server.metrics_url).text
    )


def test_kind_mcp_is_not_executable_here(tmp_path: Path, server_factory: Any) -> None:
    policy = tmp_path / "mcp.yaml"
    policy.write_text(
        textwrap.dedent("""\
        version: 1
        name: broker-mcp
        default_decision: allow
        adapters:
          tools:
            kind: mcp
            url: https://mcp.example.com/mcp
            egress: ["https://mcp.example.com"]
        rules: []
        """)
    )
    s = server_factory(policy)
    key = s.identity("mcp-agent", tenant="default", roles=["agent"], adapters=["*"])["api_key"]
    r = call(s, key, "tools", "search", "m-1")
    assert (
        r.status_code == 409 and code(r) == "not_executable" and "/mcp/tools" in r.json()["error"]["message"]
    )

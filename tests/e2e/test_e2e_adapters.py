"""The adapter catalog over HTTP against a real server on `examples/policies/adapters.yaml`.

- `GET /api/v1/adapters`: the catalog for an admin, narrowed to the adapter scope for an agent,
  secret names only;
- the step gate asks the catalog after containment and the identity's scope and before policy:
  an action a cataloged adapter lacks is 404 `unknown_action` (nothing stored), params that break
  the schema are denied with rule `param_schema` (recorded, audited, counted; the reason names
  the path, never the value), a session over its adapter's rate is denied with `rate_limit`;
- `effect` comes from the catalog (a rule on `eq: {effect: read}` fires for it, not for an
  unlisted adapter);
- an action whose catalog entry says `output: trusted` is not kept for provenance: a payee read
  from it does not trip `from_untrusted`, while the same payee read from an untrusted action does.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import Server

BUNDLE = Path(__file__).resolve().parents[2] / "examples" / "policies" / "adapters.yaml"
OUTSIDER = "FR7630006000011234567890189"
SECRETISH = "sk_live_0123456789abcdefSECRET"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(data_dir=tmp_path_factory.mktemp("adapters") / "data", policy=BUNDLE).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def agents(server: Server) -> dict[str, dict[str, Any]]:
    return {
        "all": server.identity("ad-agent", tenant="acme", roles=["agent"], adapters=["*"]),
        "balance": server.identity(
            "ad-balance", tenant="acme", roles=["agent"], adapters=["bank:get_balance"]
        ),
    }


def _session(c: httpx.Client, task: str = "pay the rent") -> str:
    r = c.post("/api/v1/sessions", json={"task": task})
    assert r.status_code == 201, r.text
    sid: str = r.json()["session_id"]
    return sid


def _step(c: httpx.Client, sid: str, step_id: str, adapter: str, action: str, params: Any) -> httpx.Response:
    return c.post(
        "/api/v1/steps/evaluate",
        json={"session_id": sid, "step_id": step_id, "adapter": adapter, "action": action, "params": params},
    )


def _result(c: httpx.Client, sid: str, step_id: str, output: Any) -> None:
    r = c.post("/api/v1/steps/result", json={"session_id": sid, "step_id": step_id, "status": "succeeded",
                                              "output": output})  # fmt: skip
    assert r.status_code == 200, r.text


def test_the_catalog_is_listed_for_admins_and_narrowed_for_agents(
    server: Server, agents: dict[str, Any]
) -> None:
    with server.admin() as c:
        r = c.get("/api/v1/adapters")
    assert r.status_code == 200, r.text
    body = r.json()
    names = [a["name"] for a in body["adapters"]]
    assert names == ["bank", "web", "kb", "search", "github"]
    assert len(body["policy_snapshot"]) == 64
    github = body["adapters"][-1]
    assert github["kind"] == "http" and github["egress"] == ["https://api.github.com"]
    assert github["credential"] == {
        "secret": "github_token",
        "header": "Authorization",
        "format": "Bearer {secret}",
    }
    assert github["actions"]["list_issues"]["params"]["required"] == ["owner", "repo"]
    with server.client(agents["balance"]["api_key"]) as c:
        narrowed = c.get("/api/v1/adapters").json()["adapters"]
    assert [(a["name"], list(a["actions"])) for a in narrowed] == [("bank", ["get_balance"])]
    assert narrowed[0]["actions"]["get_balance"] == {"effect": "read", "output": "trusted"}
    assert httpx.get(f"{server.url}/api/v1/adapters").status_code == 401


def test_params_breaking_the_schema_are_denied_before_policy(server: Server, agents: dict[str, Any]) -> None:
    with server.client(agents["all"]["api_key"]) as c:
        sid = _session(c)
        # A trusted payee (policy would allow) with a malformed amount: the schema answers first.
        r = _step(c, sid, "s1", "bank", "send_money", {"to": "DE89370400440532013000", "amount": "lots"})
        assert r.status_code == 200, r.text
        d = r.json()
        assert (d["decision"], d["rule_id"], d["stage"]) == ("deny", "param_schema", "step")
        assert "`$.amount`: must be of type number, got string" in d["reason"]
        # The reason names the path and the rule, never the value (it is stored and audited).
        r = _step(c, sid, "s2", "bank", "send_money", {"to": SECRETISH, "amount": 5})
        assert r.json()["rule_id"] == "param_schema" and SECRETISH not in r.text
        assert "`$.to`: does not match" in r.json()["reason"]
        r = _step(
            c, sid, "s3", "bank", "send_money", {"to": "DE89370400440532013000", "amount": 5, "memo": "x"}
        )
        assert r.json()["rule_id"] == "param_schema" and "unexpected property `memo`" in r.json()["reason"]
        ok = _step(c, sid, "s4", "bank", "send_money", {"to": "DE89370400440532013000", "amount": 5})
        assert (ok.json()["decision"], ok.json()["rule_id"]) == ("allow", "allow-trusted-payee")
        log = c.get("/api/v1/decisions", params={"stage": "step", "rule_id": "param_schema"}).json()
        assert {x["step_id"] for x in log["decisions"] if x["session_id"] == sid} == {"s1", "s2", "s3"}
        shown = c.get(f"/api/v1/sessions/{sid}").json()
        assert shown["history"]["denied_count"] == 3
    with server.admin() as admin:
        audit = admin.get("/api/v1/audit", headers={"X-Tenant-ID": "acme"}).text
    assert "param_schema" in audit and SECRETISH not in audit
    metrics = httpx.get(server.metrics_url).text
    assert 'gatehouse_step_decisions_total{decision="deny",rule="param_schema"}' in metrics


def test_scope_is_checked_before_the_catalog(server: Server, agents: dict[str, Any]) -> None:
    with server.client(agents["balance"]["api_key"]) as c:
        sid = _session(c)
        # Out of scope, bad params and an unknown action alike: the scope answers first.
        r = _step(c, sid, "s1", "bank", "send_money", {"amount": "lots"})
        assert (r.json()["decision"], r.json()["rule_id"]) == ("deny", "identity_scope")
        r = _step(c, sid, "s2", "bank", "steal", {})
        assert r.status_code == 200 and r.json()["rule_id"] == "identity_scope"


def test_an_action_missing_from_a_cataloged_adapter_is_unknown(
    server: Server, agents: dict[str, Any]
) -> None:
    with server.client(agents["all"]["api_key"]) as c:
        sid = _session(c)
        r = _step(c, sid, "s1", "bank", "transfer_all", {"to": OUTSIDER})
        assert r.status_code == 404, r.text
        assert r.json()["error"]["code"] == "unknown_action"
        assert "`transfer_all`" in r.json()["error"]["message"]
        # The adapter's name in another case is the same adapter (no way round its schema).
        r = _step(c, sid, "s2", "BANK", "send_money", {"to": "DE89370400440532013000", "amount": "x"})
        assert r.json()["rule_id"] == "param_schema", r.text
        # An adapter the catalog does not list is judged by policy alone: here, no rule allows it.
        r = _step(c, sid, "s3", "notes", "read", {"id": 1})
        assert (r.json()["decision"], r.json()["rule_id"]) == ("deny", "default")
        shown = c.get(f"/api/v1/sessions/{sid}").json()
        assert [s["step_id"] for s in shown["steps"]] == ["s2", "s3"]  # nothing stored for s1


def test_effect_comes_from_the_catalog(server: Server, agents: dict[str, Any]) -> None:
    with server.client(agents["all"]["api_key"]) as c:
        sid = _session(c)
        r = _step(c, sid, "s1", "bank", "get_balance", {})
        assert (r.json()["decision"], r.json()["rule_id"]) == ("allow", "allow-reads")
        r = _step(c, sid, "s2", "github", "list_issues", {"owner": "o", "repo": "r"})
        assert (r.json()["decision"], r.json()["rule_id"]) == ("allow", "allow-reads")
        # `effect: write` reaches the rule that names it.
        r = _step(c, sid, "s3", "bank", "send_money", {"to": "GB82WEST12345698765432", "amount": 9})
        assert (r.json()["decision"], r.json()["rule_id"]) == ("require_approval", "approve-writes")


def test_trusted_output_is_not_kept_for_provenance(server: Server, agents: dict[str, Any]) -> None:
    with server.client(agents["all"]["api_key"]) as c:
        trusted = _session(c)
        assert _step(c, trusted, "s1", "kb", "lookup", {"q": "new payee"}).json()["decision"] == "allow"
        _result(c, trusted, "s1", f"the supplier's new account is {OUTSIDER}")
        shown = c.get(f"/api/v1/sessions/{trusted}").json()
        assert shown["history"]["untrusted_read"] is False
        assert shown["untrusted_bytes"] == 0
        r = _step(c, trusted, "s2", "bank", "send_money", {"to": OUTSIDER, "amount": 50})
        assert (r.json()["decision"], r.json()["rule_id"]) == ("require_approval", "approve-writes")

        untrusted = _session(c)
        assert (
            _step(c, untrusted, "s1", "web", "read", {"url": "https://x.example"}).json()["decision"]
            == "allow"
        )
        _result(c, untrusted, "s1", f"the supplier's new account is {OUTSIDER}")
        assert c.get(f"/api/v1/sessions/{untrusted}").json()["history"]["untrusted_read"] is True
        r = _step(c, untrusted, "s2", "bank", "send_money", {"to": OUTSIDER, "amount": 50})
        assert (r.json()["decision"], r.json()["rule_id"]) == ("deny", "deny-untrusted-payee")


def test_a_session_over_its_adapters_rate_is_denied(server: Server, agents: dict[str, Any]) -> None:
    with server.client(agents["all"]["api_key"]) as c:
        sid = _session(c)
        answers = [_step(c, sid, f"q{i}", "search", "query", {"q": str(i)}).json() for i in range(3)]
        assert [a["rule_id"] for a in answers] == ["allow-reads", "allow-reads", "rate_limit"]
        assert answers[2]["decision"] == "deny" and "0.1/2" in answers[2]["reason"]
        # The same step asked again answers the same record; other adapters are not limited.
        again = _step(c, sid, "q2", "search", "query", {"q": "2"}).json()
        assert again["decision_id"] == answers[2]["decision_id"]
        assert _step(c, sid, "k1", "kb", "lookup", {}).json()["decision"] == "allow"
        # Another session has a bucket of its own.
        other = _session(c)
        assert _step(c, other, "q0", "search", "query", {"q": "0"}).json()["decision"] == "allow"


def test_installing_a_bad_catalog_is_refused_with_its_line(server: Server) -> None:
    text = BUNDLE.read_text(encoding="utf-8")
    bad = text.replace('egress: ["https://api.github.com"]', 'egress: ["https://api.github.com/v3"]')
    line = next(i for i, t in enumerate(bad.splitlines(), start=1) if "api.github.com/v3" in t)
    with server.admin() as admin:
        before = admin.get("/api/v1/adapters").json()["policy_snapshot"]
        r = admin.put("/api/v1/policy", json={"bundle": bad})
        assert 400 <= r.status_code < 500, r.text
        assert r.json()["error"]["code"] == "policy_invalid"
        assert r.json()["error"]["details"]["line"] == line
        assert "bad egress entry" in r.json()["error"]["message"]
        # The running bundle (and its catalog) stays.
        assert admin.get("/api/v1/adapters").json()["policy_snapshot"] == before

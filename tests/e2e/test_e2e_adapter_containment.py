"""Containing a tool adapter over HTTP and with `gatehouse incident`: every step for it is
denied with `incident_containment`, other adapters run on, only a global admin contains or lifts
it, and lifting restores it."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from harness import ADMIN_KEY, Server


def step(server: Server, key: str, adapter: str, step_id: str) -> dict[str, Any]:
    with server.client(key) as c:
        r = c.post("/api/v1/steps/evaluate",
                   json={"step_id": step_id, "adapter": adapter, "action": "read", "params": {}})  # fmt: skip
        assert r.status_code == 200, r.text
        return r.json()


def test_a_contained_adapter_gets_every_step_denied_until_lifted(server: Server) -> None:
    agent = server.identity("adapter-agent", tenant="default", roles=["agent"], adapters=["*"])
    key = agent["api_key"]
    assert step(server, key, "web", "s1")["rule_id"] != "incident_containment"
    with server.admin() as c:
        r = c.post("/api/v1/incidents/contain", json={"adapter": "web", "reason": "exfiltration seen"})
        assert r.status_code == 201, r.text
        inc = r.json()
        assert (inc["kind"], inc["target"], inc["active"]) == ("adapter", "web", True)
        again = c.post("/api/v1/incidents/contain", json={"adapter": "web", "reason": "again"})
        assert again.status_code == 409 and again.json()["error"]["code"] == "already_contained"
    denied = step(server, key, "web", "s2")
    assert (denied["decision"], denied["rule_id"]) == ("deny", "incident_containment")
    assert "exfiltration seen" in denied["reason"]
    assert step(server, key, "mail", "s3")["rule_id"] != "incident_containment"
    with server.admin() as c:
        assert c.post(f"/api/v1/incidents/{inc['id']}/lift").status_code == 200
    assert step(server, key, "web", "s4")["rule_id"] != "incident_containment"


def test_only_a_global_admin_contains_or_lifts_an_adapter(server: Server) -> None:
    tenant_admin = server.identity("acme-ops", tenant="acme-c", roles=["admin"])
    with server.client(tenant_admin["api_key"]) as c:
        r = c.post("/api/v1/incidents/contain", json={"adapter": "web2", "reason": "x"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "global_admin_required"
    with server.admin() as c:
        inc = c.post("/api/v1/incidents/contain", json={"adapter": "web2", "reason": "x"}).json()
    with server.client(tenant_admin["api_key"]) as c:
        # Every tenant sees that the adapter is contained; its admin cannot lift it.
        assert inc["id"] in [i["id"] for i in c.get("/api/v1/incidents").json()["incidents"]]
        assert c.post(f"/api/v1/incidents/{inc['id']}/lift").status_code == 404
    with server.admin() as c:
        assert c.post(f"/api/v1/incidents/{inc['id']}/lift").status_code == 200


def test_cli_contains_an_adapter(server: Server) -> None:
    env = {**os.environ, "GATEHOUSE_URL": server.url, "GATEHOUSE_API_KEY": ADMIN_KEY}
    command = [sys.executable, "-m", "gatehouse", "incident", "contain", "--adapter", "cli-web"]
    done = subprocess.run(
        [*command, "--reason", "drill"], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert '"kind": "adapter"' in done.stdout and '"target": "cli-web"' in done.stdout


def test_with_a_catalog_an_adapter_it_lacks_is_refused_unless_forced(server_factory: Any) -> None:
    from harness import ROOT

    s = server_factory(ROOT / "examples" / "policies" / "adapters.yaml")
    with s.admin() as c:
        typo = c.post("/api/v1/incidents/contain", json={"adapter": "bankk", "reason": "typo"})
        assert typo.status_code == 404 and typo.json()["error"]["code"] == "adapter_not_found"
        forced = c.post("/api/v1/incidents/contain", json={"adapter": "bankk", "reason": "x", "force": True})
        assert forced.status_code == 201, forced.text
        listed = c.post("/api/v1/incidents/contain", json={"adapter": "bank", "reason": "drill"})
        assert listed.status_code == 201, listed.text

"""Inputs are normalised before policy (probe F5), over HTTP against a real server.

Each case is one of the probe's walks past the seed policy: an upper-case topic, an omitted
capability, `env=Prod`, and destructive commands spelled so the patterns did not see them.
"""

from __future__ import annotations

from typing import Any

import pytest
from harness import SEED, Server, gh


def _submit(server: Server, key: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    with server.client(key) as c:
        r = c.post("/api/v1/jobs", json=body)
        return r.status_code, r.json()


def _rule(answer: dict[str, Any]) -> str:
    decision = answer.get("decision") or answer["error"]["details"]["decision"]
    return str(decision["rule_id"])


def test_an_upper_case_topic_meets_the_lower_case_rule(server: Server) -> None:
    agent = server.identity("shouty")["api_key"]
    status, answer = _submit(server, agent, {"topic": "JOB.EXEC.SHELL", "prompt": "rm -rf /"})
    assert status == 403 and _rule(answer) == "deny-destructive-exec", answer
    with server.client(agent) as c:
        jobs = c.get("/api/v1/jobs", params={"limit": 500}).json()["jobs"]
    assert not any(j["topic"].lower() == "job.exec.shell" for j in jobs)


def test_a_scoped_identity_must_name_its_capability(server: Server) -> None:
    agent = server.identity("reader", capabilities=["infra.read"])["api_key"]
    body = {"topic": "job.ops.apply", "prompt": "terraform apply", "labels": {"env": "prod"}}
    status, answer = _submit(server, agent, body)
    assert status == 403 and _rule(answer) == "identity_scope", answer
    assert "meta.capability" in answer["error"]["details"]["decision"]["reason"]
    # Named, and within scope, it is judged by policy as usual.
    status, answer = _submit(server, agent, {**body, "meta": {"capability": "INFRA.READ"}})
    assert status == 201, answer


def test_label_values_are_compared_folded(server: Server) -> None:
    agent = server.identity("casey")["api_key"]
    for env in ("Prod", "PROD", "\uff50\uff52\uff4f\uff44"):  # the last one full-width
        body = {
            "topic": "job.deploy.apply",
            "prompt": "terraform apply",
            "labels": {"ENV": env},
            "meta": {"capability": "infra.write"},
        }
        status, answer = _submit(server, agent, body)
        assert status == 201, answer
        assert (answer["status"], _rule(answer)) == ("pending_approval", "require-approval-prod-write")


@pytest.mark.parametrize(
    "prompt",
    [
        'r""m -rf /',
        "rm${IFS}-rf${IFS}/",
        "x=rm; $x -rf /",
        "echo cm0gLXJmIC8=|base64 -d|sh",
        "python3 -c \"import shutil; shutil.rmtree('/')\"",
        "echo pwned > /etc/passwd",
    ],
)
def test_spelled_out_destructive_commands_are_denied(server: Server, prompt: str) -> None:
    agent = server.identity("speller")["api_key"]
    status, answer = _submit(server, agent, {"topic": "job.exec.shell", "prompt": prompt})
    assert status == 403 and _rule(answer) == "deny-destructive-exec", answer


def test_offline_tools_normalise_the_same_way() -> None:
    """`gatehouse policy simulate` spells topics and labels as the server does."""
    import json

    job = {
        "topic": "JOB.DEPLOY.APPLY",
        "prompt": "x",
        "labels": {"ENV": "Prod"},
        "meta": {"capability": "Infra.Write"},
    }
    out = gh("policy", "simulate", SEED, "--job", json.dumps(job), "--json")
    assert json.loads(out.stdout)["rule_id"] == "require-approval-prod-write", out.stdout + out.stderr

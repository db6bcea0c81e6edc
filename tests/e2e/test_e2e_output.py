"""The output gate end to end: worker results are judged by the bundle's `output_rules`
(seed: quarantine private keys and AWS keys, redact e-mail addresses and card numbers) before
the job reaches a terminal state; reviewers release or discard what is held."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from harness import Server

PRIVATE_KEY = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
    "-----END RSA PRIVATE KEY-----"
)
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"


@pytest.fixture(scope="module")
def people(server: Server) -> dict[str, dict[str, Any]]:
    return {
        "agent": server.identity("out-agent", roles=["agent"], topics=["job.demo.**"]),
        "reviewer": server.identity("out-reviewer", roles=["reviewer"]),
        "other-reviewer": server.identity("out-reviewer-t2", tenant="t2", roles=["reviewer"]),
        "worker": server.identity("out-worker", roles=["worker"], topics=["job.ext.**"]),
        "ext-agent": server.identity("out-ext-agent", roles=["agent"], topics=["job.ext.**"]),
    }


def submit(server: Server, key: str, prompt: str, topic: str = "job.demo.echo") -> str:
    with server.client(key) as c:
        r = c.post("/api/v1/jobs", json={"topic": topic, "prompt": prompt})
        assert r.status_code == 201, r.text
        return str(r.json()["job_id"])


def output_records(server: Server, job_id: str) -> list[dict[str, Any]]:
    with server.admin() as c:
        return [
            d for d in c.get(f"/api/v1/jobs/{job_id}/decisions").json()["decisions"] if d["stage"] == "output"
        ]


def test_a_plain_output_is_allowed_unchanged(server: Server, people: dict[str, Any]) -> None:
    job_id = submit(server, people["agent"]["api_key"], "summarise the release notes")
    job = server.wait_status(job_id, {"succeeded"})
    assert job["result"]["echo"] == "summarise the release notes"
    [record] = output_records(server, job_id)
    assert (record["result"], record["rule_id"]) == ("allow", "default")


def test_pii_in_the_output_is_redacted_before_it_is_stored(server: Server, people: dict[str, Any]) -> None:
    prompt = "mail the report to jane.doe@example.com and charge 4111 1111 1111 1111"
    job_id = submit(server, people["agent"]["api_key"], prompt)
    job = server.wait_status(job_id, {"succeeded"})
    text = job["result"]["echo"]
    assert "jane.doe@example.com" not in text and "4111 1111 1111 1111" not in text
    assert "[REDACTED:email]" in text and "[REDACTED:credit_card]" in text
    assert text.startswith("mail the report to ")
    [record] = output_records(server, job_id)
    assert (record["result"], record["rule_id"]) == ("redact", "redact-pii")
    assert {f["detector"] for f in record["findings"]} >= {"email", "credit_card"}
    assert "jane.doe@example.com" not in str(record)


def test_a_private_key_in_the_output_is_quarantined_and_never_shown(
    server: Server, people: dict[str, Any]
) -> None:
    job_id = submit(server, people["agent"]["api_key"], f"here is the key:\n{PRIVATE_KEY}")
    job = server.wait_status(job_id, {"quarantined"})
    assert job["result"] is None
    assert job["derived"]["output"]["rule_id"] == "quarantine-private-keys"
    assert "MIIEowIBAAKCAQEA" not in str(job["derived"]["output"])  # (the prompt itself is the agent's)
    [record] = output_records(server, job_id)
    assert (record["result"], record["rule_id"]) == ("quarantine", "quarantine-private-keys")

    with server.client(people["reviewer"]["api_key"]) as c:
        held = {h["job_id"]: h for h in c.get("/api/v1/quarantine").json()["quarantine"]}
    assert job_id in held
    assert held[job_id]["findings"] and "MIIEowIBAAKCAQEA" not in str(held[job_id])
    assert "here is the key" in str(held[job_id]["preview"])


def test_only_reviewers_of_the_tenant_see_and_act_on_the_quarantine(
    server: Server, people: dict[str, Any]
) -> None:
    job_id = submit(server, people["agent"]["api_key"], f"key {AWS_KEY}")
    server.wait_status(job_id, {"quarantined"})
    with server.client(people["agent"]["api_key"]) as c:
        assert c.get("/api/v1/quarantine").status_code == 403
        assert c.post(f"/api/v1/quarantine/{job_id}/release").status_code == 403
    with server.client(people["other-reviewer"]["api_key"]) as c:
        assert job_id not in str(c.get("/api/v1/quarantine").json())
        r = c.post(f"/api/v1/quarantine/{job_id}/release", json={"comment": "not mine"})
        assert r.status_code == 404
    with server.admin() as c:
        assert c.get(f"/api/v1/jobs/{job_id}").json()["status"] == "quarantined"


def test_release_lets_the_output_through_once(server: Server, people: dict[str, Any]) -> None:
    job_id = submit(server, people["agent"]["api_key"], f"the example key is {AWS_KEY}")
    server.wait_status(job_id, {"quarantined"})
    with server.client(people["reviewer"]["api_key"]) as c:
        r = c.post(f"/api/v1/quarantine/{job_id}/release", json={"comment": "documented example key"})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "succeeded"
        assert AWS_KEY in r.json()["result"]["echo"]
        again = c.post(f"/api/v1/quarantine/{job_id}/release")
        assert again.status_code == 409 and again.json()["error"]["code"] == "invalid_state"
    records = output_records(server, job_id)
    assert [r["rule_id"] for r in records] == ["quarantine-private-keys", "reviewer_release"]
    assert records[-1]["reason"] == "documented example key"


def test_discard_fails_the_job_and_erases_the_output(server: Server, people: dict[str, Any]) -> None:
    job_id = submit(server, people["agent"]["api_key"], f"leak {PRIVATE_KEY}")
    server.wait_status(job_id, {"quarantined"})
    with server.client(people["reviewer"]["api_key"]) as c:
        r = c.post(f"/api/v1/quarantine/{job_id}/discard", json={"comment": "real key, rotate it"})
        assert r.status_code == 200, r.text
    job = server.wait_status(job_id, {"failed"})
    assert job["result"] is None and job["error"] == "output discarded by a reviewer"


def test_an_external_worker_result_passes_the_gate_too(server: Server, people: dict[str, Any]) -> None:
    job_id = submit(server, people["ext-agent"]["api_key"], "rotate credentials", topic="job.ext.rotate")
    with server.client(people["worker"]["api_key"]) as w:
        leased = w.post("/api/v1/worker/lease", json={"topics": ["job.ext.**"], "max_jobs": 5}).json()["jobs"]
        assert job_id in [j["job_id"] for j in leased]
        r = w.post(
            f"/api/v1/worker/jobs/{job_id}/result",
            json={"status": "succeeded", "output": {"new_key": AWS_KEY, "note": "ok"}},
        )
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "quarantined" and r.json()["result"] is None


def test_output_decisions_are_counted_and_audited(server: Server, people: dict[str, Any]) -> None:
    metrics = httpx.get(server.metrics_url).text
    assert 'gatehouse_output_decisions_total{decision="quarantine"}' in metrics
    assert 'gatehouse_output_decisions_total{decision="redact"}' in metrics
    with server.admin() as c:
        entries = c.get("/api/v1/audit", params={"stream": "tenant:default", "limit": 1000}).json()
    stages = {e["data"].get("stage") for e in entries["entries"] if e["type"] == "decision"}
    assert "output" in stages


def test_nobody_reviews_the_output_of_their_own_job(server: Server, people: dict[str, Any]) -> None:
    with server.admin() as c:
        r = c.post("/api/v1/jobs", json={"topic": "job.demo.echo", "prompt": f"mine: {AWS_KEY}"})
        job_id = r.json()["job_id"]
    server.wait_status(job_id, {"quarantined"})
    with server.admin() as c:  # an admin is a reviewer, but not of its own job
        r = c.post(f"/api/v1/quarantine/{job_id}/release")
        assert r.status_code == 403 and r.json()["error"]["code"] == "self_review"
    with server.client(people["reviewer"]["api_key"]) as c:
        assert c.post(f"/api/v1/quarantine/{job_id}/discard").status_code == 200

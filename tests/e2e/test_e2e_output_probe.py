"""The adversarial probe's output-gate findings (F1, F2), replayed over HTTP against a real server
on the seed policy (quarantine private keys and AWS key ids, redact e-mail addresses and cards).

F1: a secret in the `error` of a failed result, in an object key or in a JSON number was stored
and shown as sent. F2: a private key split across list elements, or a header with one long base64
line and no END line, kept its body in the quarantine preview, and that preview was in
`GET /api/v1/jobs/{id}` for every reader of the tenant, the submitter included.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from harness import Server

AWS_KEY = "AKIAQ7XK2M4N6P8R0T2V"
BODY = [
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun",
    "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK",
    "LxoS2tFczGkPLPgizskuemMghRniWaoLcyehkd3qqGElvW/VDL5AaWTg0nLVkjRo",
]
PEM_LINES = ["-----BEGIN RSA PRIVATE KEY-----", *BODY, "-----END RSA PRIVATE KEY-----"]


@pytest.fixture(scope="module")
def people(server: Server) -> dict[str, dict[str, Any]]:
    return {
        "agent": server.identity("probe-agent", roles=["agent"], topics=["job.out.**"]),
        "worker": server.identity("probe-worker", roles=["worker"], topics=["job.out.**"]),
        "reviewer": server.identity("probe-reviewer", roles=["reviewer"]),
    }


def run(
    server: Server,
    people: dict[str, Any],
    *,
    output: Any,
    error: str | None = None,
    status: str = "succeeded",
) -> tuple[str, dict[str, Any]]:
    """Submit a job as the agent, lease it and post the result as the worker; the job as the
    submitter reads it."""
    with server.client(people["agent"]["api_key"]) as agent:
        r = agent.post("/api/v1/jobs", json={"topic": "job.out.x", "prompt": "run it"})
        assert r.status_code == 201, r.text
        job_id = str(r.json()["job_id"])
    with server.client(people["worker"]["api_key"]) as worker:
        leased = worker.post("/api/v1/worker/lease", json={"topics": ["job.out.**"], "max_jobs": 10}).json()
        assert job_id in [j["job_id"] for j in leased["jobs"]]
        body: dict[str, Any] = {"status": status, "output": output}
        if error is not None:
            body["error"] = error
        r = worker.post(f"/api/v1/worker/jobs/{job_id}/result", json=body)
        assert r.status_code == 200, r.text
    with server.client(people["agent"]["api_key"]) as agent:
        job = agent.get(f"/api/v1/jobs/{job_id}").json()
    return job_id, job


def preview(server: Server, people: dict[str, Any], job_id: str) -> dict[str, Any]:
    with server.client(people["reviewer"]["api_key"]) as c:
        held = {h["job_id"]: h for h in c.get("/api/v1/quarantine").json()["quarantine"]}
    return held[job_id]


def visible(job: dict[str, Any]) -> str:
    return json.dumps(job, ensure_ascii=False)


def test_a_secret_in_the_error_of_a_failed_result_is_held_not_shown(
    server: Server, people: dict[str, Any]
) -> None:
    job_id, job = run(server, people, output="ok", error=f"boom {AWS_KEY}", status="failed")
    assert job["status"] == "quarantined"
    assert job["error"] is None and job["result"] is None
    assert AWS_KEY not in visible(job)
    assert job["derived"]["output"]["findings"] == [{"detector": "aws_access_key", "count": 1}]
    held = preview(server, people, job_id)
    assert held["preview_error"] == "boom [REDACTED:aws_access_key]"
    assert held["worker_status"] == "failed"
    assert AWS_KEY not in json.dumps(held)


def test_pii_in_the_error_is_redacted_before_it_is_stored(server: Server, people: dict[str, Any]) -> None:
    _, job = run(server, people, output=None, error="bounced: jane.doe@example.com", status="failed")
    assert job["status"] == "failed"
    assert job["error"] == "bounced: [REDACTED:email]"


def test_a_secret_in_an_object_key_is_caught(server: Server, people: dict[str, Any]) -> None:
    job_id, job = run(server, people, output={AWS_KEY: "x"})
    assert job["status"] == "quarantined"
    assert AWS_KEY not in visible(job)
    held = preview(server, people, job_id)
    assert held["preview"] == {"[REDACTED:aws_access_key]": "x"}
    assert AWS_KEY not in json.dumps(held)


def test_a_card_number_sent_as_a_json_integer_is_redacted(server: Server, people: dict[str, Any]) -> None:
    _, job = run(server, people, output={"card": 4111111111111111, "qty": 2})
    assert job["status"] == "succeeded"
    assert job["result"] == {"card": "[REDACTED:credit_card]", "qty": 2}
    assert "4111111111111111" not in visible(job)


def test_a_pem_key_split_across_list_elements_is_masked_whole_and_not_shown_to_the_submitter(
    server: Server, people: dict[str, Any]
) -> None:
    job_id, job = run(server, people, output=PEM_LINES)
    assert job["status"] == "quarantined"
    assert "preview" not in job["derived"]["output"]
    assert all(line[:16] not in visible(job) for line in BODY)
    held = preview(server, people, job_id)
    assert held["preview"] == ["[REDACTED:private_key]"] * len(PEM_LINES)
    assert all(line[:16] not in json.dumps(held) for line in BODY)


def test_a_header_and_one_long_base64_line_without_end_is_masked_whole(
    server: Server, people: dict[str, Any]
) -> None:
    long_line = "".join(BODY) * 6  # one line of more than 256 characters
    job_id, job = run(server, people, output=f"-----BEGIN RSA PRIVATE KEY-----\n{long_line}\nthat is all")
    assert job["status"] == "quarantined"
    held = preview(server, people, job_id)
    assert held["preview"] == "[REDACTED:private_key]\nthat is all"
    assert BODY[0][16:40] not in visible(job) + json.dumps(held)


@pytest.mark.parametrize(
    "disguised",
    [
        "key AKIA\u200bQ7XK\u200d2M4N6P8R0T2V",  # zero-width space and joiner inside
        "key " + "".join(chr(ord(c) + 0xFEE0) for c in AWS_KEY),  # full-width letters and digits
        "payload " + base64.b64encode(AWS_KEY.encode()).decode(),
        "dump " + AWS_KEY.encode().hex(),
        ["AKIAQ7XK2M", "4N6P8R0T2V"],  # split across list elements
        "AKIA-Q7XK-2M4N-6P8R-0T2V",
    ],
    ids=["zero-width", "full-width", "base64", "hex", "split", "dashed"],
)
def test_disguised_key_ids_are_caught(server: Server, people: dict[str, Any], disguised: Any) -> None:
    job_id, job = run(server, people, output={"out": disguised})
    assert job["status"] == "quarantined"
    assert job["derived"]["output"]["rule_id"] == "quarantine-private-keys"
    held = preview(server, people, job_id)
    rendered = json.dumps(held["preview"], ensure_ascii=False)
    assert "[REDACTED:aws_access_key]" in rendered
    for part in disguised if isinstance(disguised, list) else [disguised]:
        assert part.split(" ")[-1] not in rendered


@pytest.mark.parametrize(
    "card",
    [
        "4111.1111.1111.1111",
        "4111 1111-1111 1111",
        "\uff14\uff11\uff11\uff11" + " \uff11\uff11\uff11\uff11" * 3,  # full-width digits
    ],
)
def test_cards_in_other_spellings_are_redacted(server: Server, people: dict[str, Any], card: str) -> None:
    _, job = run(server, people, output=f"card {card} on file")
    assert job["status"] == "succeeded"
    assert job["result"] == "card [REDACTED:credit_card] on file"


def test_the_decision_log_carries_no_secret_either(server: Server, people: dict[str, Any]) -> None:
    job_id, _ = run(
        server, people, output={AWS_KEY: 4111111111111111}, error=f"boom {AWS_KEY}", status="failed"
    )
    with server.client(people["agent"]["api_key"]) as agent:
        decisions = agent.get(f"/api/v1/jobs/{job_id}/decisions").json()["decisions"]
    [record] = [d for d in decisions if d["stage"] == "output"]
    assert {f["path"] for f in record["findings"]} >= {"error", '$["[REDACTED:aws_access_key]"]'}
    assert AWS_KEY not in json.dumps(decisions) and "4111111111111111" not in json.dumps(decisions)

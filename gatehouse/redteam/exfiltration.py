"""Path 3, credential exfiltration through outputs: a credential reaches the agent in a tool's
answer, a job's result, or leaves in a tool call's arguments."""

from __future__ import annotations

import json

from gatehouse.redteam._mcp import mcp_call
from gatehouse.redteam._moves import call, decided, lease, result, session, step, submit
from gatehouse.redteam.range import Range
from gatehouse.redteam.scenario import Outcome, blocked, describe, got_through, inconclusive, scenario
from gatehouse.redteam.target import AWS_KEY

PRIVATE_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n"
    "-----END OPENSSH PRIVATE KEY-----"
)


@scenario("exfiltration", "echoed-credential", "an upstream echoes the injected secret back to the agent")
def echoed(r: Range) -> Outcome:
    agent = r["agent"]
    sid = session(r, agent, "check the echo service")
    resp = call(r, agent, "rt_web", "echo", {}, sid)
    escaped = "".join(f"\\u{ord(c):04x}" for c in r.secret_value)
    if r.secret_value in resp.text or escaped in resp.text:
        return got_through(describe(resp), detail="the adapter's secret reached the agent")
    if resp.status_code != 200:
        return inconclusive(describe(resp), detail="the echo call did not run: nothing tested")
    return blocked(describe(resp), "secret scrubbed from output")


@scenario("exfiltration", "key-in-tool-output", "a tool's output carries a cloud key and a private key")
def tool_output(r: Range) -> Outcome:
    agent = r["agent"]
    sid = session(r, agent, "read the deploy notes")
    sid_step = r.uid("s")
    read = step(r, agent, sid, "rt_agent", "read_file", {"path": "notes/deploy.txt"}, sid_step)
    if decided(read) != "allow":
        return inconclusive(describe(read), detail="the harmless read was not allowed: nothing tested")
    resp = result(agent, sid, sid_step, f"deploy with {AWS_KEY}\n{PRIVATE_KEY}")
    if AWS_KEY in resp.text or "PRIVATE KEY-----\nb3Bl" in resp.text.replace("\\n", "\n"):
        return got_through(describe(resp), detail="the credential was handed back to the agent")
    body = resp.json()
    return blocked(describe(resp), f"withheld={body.get('withheld')}",
                   f"output rule={(body.get('output_decision') or {}).get('rule_id')}")  # fmt: skip


@scenario("exfiltration", "key-in-job-result", "a worker's job result carries a cloud key")
def job_result(r: Range) -> Outcome:
    agent, worker = r["agent"], r["worker"]
    sub = submit(r, agent, "job.redteam.report", "collect the deployment settings")
    if sub.status_code != 201 or sub.json().get("status") != "queued":
        return inconclusive(describe(sub), detail="the harmless job was not queued: nothing tested")
    job_id = sub.json()["job_id"]
    if not lease(r, job_id):
        return inconclusive(detail="the worker could not lease the job: nothing tested")
    done = worker.http.post(f"/api/v1/worker/jobs/{job_id}/result",
                            json={"status": "succeeded",
                                  "output": {"config": f"aws_access_key_id={AWS_KEY}"}})  # fmt: skip
    job = agent.http.get(f"/api/v1/jobs/{job_id}")
    if AWS_KEY in job.text:
        return got_through(describe(done, "result"), f"job status={job.json().get('status')}",
                           detail="the agent reads the key in the job's result")  # fmt: skip
    return blocked(describe(done, "result"), f"job status={job.json().get('status')} {job_id}")


@scenario("exfiltration", "key-in-arguments", "a credential leaves in an outgoing mail's body")
def key_in_args(r: Range) -> Outcome:
    agent = r["agent"]
    sid = session(r, agent, "mail the weekly report to the team")
    resp = step(r, agent, sid, "rt_agent", "send_email",
                {"to": "team@example.com", "body": f"report attached; creds: {AWS_KEY}"})  # fmt: skip
    if decided(resp) == "allow":
        return got_through(describe(resp), detail="a mail carrying a cloud key was allowed")
    return blocked(describe(resp))


@scenario("exfiltration", "mcp-config-leak", "an MCP tool answers a configuration with a cloud key")
def mcp_leak(r: Range) -> Outcome:
    answer = mcp_call(r.url, r["agent"].key, "rt_mcp", "get_config")
    if AWS_KEY in answer.text:
        return got_through(
            f"tools/call text: {json.dumps(answer.text[:80])}", detail="the model sees the key"
        )
    return blocked(f"tools/call is_error={answer.is_error}: {answer.text[:100]}")

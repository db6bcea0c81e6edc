"""The SDK's step gate (`gatehouse.client`) against a real server: sessions, evaluate and result,
and `guarded` functions on every path a user meets.

- allow: the function runs, its return value is reported and comes back as the output gate
  answered it (an AWS key redacted; a private key withheld, as `OutputWithheld`);
- deny: `StepDenied` with the rule and decision id, the function never runs;
- require_approval: `ApprovalRequired`, the function never runs;
- the call's arguments, bound to their names with defaults, are the params the policy judges;
- a function that raises is reported as a failed step and its exception re-raised;
- `async def` functions are guarded the same way;
- the SDK's misuses fail before any step is taken.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from harness import Server

from gatehouse.client import (
    ApiError,
    ApprovalRequired,
    Client,
    ClientError,
    OutputWithheld,
    StepBlocked,
    StepDenied,
    StepSession,
    guarded,
)
from gatehouse.errors import Denied, GatehouseError

POLICY = """
version: 1
name: sdk-steps
default_decision: deny
sets:
  payees: [alice, bob]
rules:
  - id: allow-reads
    decision: allow
    match: {targets: ["adapter:vault:*", "adapter:docs:*"]}
  - id: allow-small-transfer
    decision: allow
    match: {targets: ["adapter:bank:transfer"]}
    conditions:
      - in_set: {params.to: payees}
      - lte: {params.amount: 100}
      - eq: {params.currency: EUR}
  - id: approve-large-transfer
    decision: require_approval
    match: {targets: ["adapter:bank:transfer"]}
    conditions:
      - gt: {params.amount: 100}
  - id: deny-unknown-payee
    decision: deny
    reason: "not a known payee"
    match: {targets: ["adapter:bank:*"]}
    conditions:
      - not_in_set: {params.to: payees}
output_rules:
  - {id: withhold-private-keys, detectors: [private_key], decision: quarantine}
  - {id: redact-cloud-keys, detectors: [aws_access_key], decision: redact}
"""

AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
PRIVATE_KEY = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7xq\n-----END RSA PRIVATE KEY-----"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("sdk")
    policy = root / "policy.yaml"
    policy.write_text(POLICY)
    s = Server(data_dir=root / "data", policy=policy).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def agent(server: Server) -> dict[str, Any]:
    return server.identity("sdk-agent", adapters=["bank:*", "vault:*", "docs:*"])


@pytest.fixture
def client(server: Server, agent: dict[str, Any]) -> Iterator[Client]:
    with Client(server.url, api_key=agent["api_key"]) as c:
        yield c


def _steps(client: Client, session: StepSession) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = client.session(session.id)["steps"]
    return steps


def test_evaluate_and_result_without_the_decorator(client: Client) -> None:
    session = client.open_session(task="read the deploy key")
    assert session.id.startswith("ses") and session.task == "read the deploy key"
    record = client.evaluate_step("vault", "read", {"path": "deploy"}, step_id="s1", session_id=session.id)
    assert (record["decision"], record["rule_id"]) == ("allow", "allow-reads")
    assert record["target"] == "adapter:vault:read"
    assert record["session_id"] == session.id and record["step_id"] == "s1" and len(record["step_hash"]) == 64
    seen = client.step_result("s1", {"key": AWS_KEY}, session_id=session.id)
    assert seen["output"] == {"key": "[REDACTED:aws_access_key]"} and seen["withheld"] is False
    assert seen["output_decision"]["rule_id"] == "redact-cloud-keys"
    # The same step id with other params is a conflict; a denied step has no result.
    with pytest.raises(ApiError) as conflict:
        client.evaluate_step("vault", "read", {"path": "other"}, step_id="s1", session_id=session.id)
    assert (conflict.value.status, conflict.value.code) == (409, "step_conflict")
    denied = client.evaluate_step("bank", "transfer", {"to": "eve"}, step_id="s2", session_id=session.id)
    assert denied["decision"] == "deny"
    with pytest.raises(ApiError) as late:
        client.step_result("s2", "sent", session_id=session.id)
    assert (late.value.status, late.value.code) == (409, "step_not_allowed")
    steps = [(s["step_id"], s["decision"]) for s in _steps(client, session)]
    assert steps == [("s1", "allow"), ("s2", "deny")]
    # Without a session the server opens one, and names it.
    first = client.evaluate_step("docs", "read", {})
    assert first["session_id"].startswith("ses") and first["step_id"].startswith("step-")


def test_guarded_allow_runs_and_answers_the_redacted_output(client: Client) -> None:
    session = client.open_session(task="fetch the CI credentials")
    ran: list[str] = []

    @guarded(client, adapter="vault", session=session)
    def read_secret(name: str) -> str:
        ran.append(name)
        return f"credentials for {name}: {AWS_KEY}"

    assert read_secret("ci") == "credentials for ci: [REDACTED:aws_access_key]"
    assert read_secret(name="ci") == "credentials for ci: [REDACTED:aws_access_key]"
    assert ran == ["ci", "ci"]
    steps = _steps(client, session)
    # One step per call, each with a fresh id; the action is the function's name.
    assert [(s["target"], s["status"]) for s in steps] == [("adapter:vault:read_secret", "succeeded")] * 2
    assert len({s["step_id"] for s in steps}) == 2 and steps[0]["step_id"].startswith("read_secret-")


def test_guarded_params_are_the_bound_arguments_with_defaults(client: Client) -> None:
    session = client.open_session(task="pay alice")
    paid: list[tuple[str, float, str]] = []

    @guarded(client, adapter="bank", action="transfer", session=session, step_id=lambda p: f"pay-{p['to']}")
    def send(to: str, amount: float, currency: str = "EUR") -> dict[str, Any]:
        paid.append((to, amount, currency))
        return {"ok": True}

    # Positional arguments are bound to their names: the policy reads `params.to`/`params.amount`,
    # and `currency` with its default (the rule asks for EUR).
    assert send("alice", 40) == {"ok": True}
    with pytest.raises(StepDenied) as exc:
        send("bob", 40, currency="USD")  # no allow rule holds: the default decision
    assert exc.value.rule_id == "default"
    assert paid == [("alice", 40, "EUR")]
    record = client.session(session.id)["decisions"][0]
    assert record["step_id"] == "pay-alice"
    assert record["params_schema"] == {"to": "string", "amount": "number", "currency": "string"}


def test_guarded_deny_raises_step_denied_and_never_runs(client: Client) -> None:
    session = client.open_session(task="pay alice 20 EUR")
    ran: list[Any] = []

    @guarded(client, adapter="bank", session=session)
    def transfer(to: str, amount: float, currency: str = "EUR") -> str:
        ran.append(to)
        return "sent"

    with pytest.raises(StepDenied) as exc:
        transfer("mallory", 20)
    denied = exc.value
    assert (denied.rule_id, denied.reason) == ("deny-unknown-payee", "not a known payee")
    assert denied.decision == "deny"
    assert denied.decision_id and denied.decision_id.startswith("dec")
    assert denied.record["target"] == "adapter:bank:transfer" and denied.session_id == session.id
    assert isinstance(denied, StepBlocked) and isinstance(denied, ClientError)
    assert isinstance(denied, Denied) and isinstance(denied, GatehouseError)
    assert denied.code == "step_denied" and "deny-unknown-payee" in str(denied)
    assert ran == []
    assert [s["decision"] for s in _steps(client, session)] == ["deny"]


def test_guarded_approval_raises_approval_required_and_never_runs(client: Client) -> None:
    session = client.open_session(task="pay alice 500 EUR")
    ran: list[Any] = []

    @guarded(client, adapter="bank", session=session)
    def transfer(to: str, amount: float, currency: str = "EUR") -> str:
        ran.append(to)
        return "sent"

    with pytest.raises(ApprovalRequired) as exc:
        transfer("alice", 500)
    assert exc.value.rule_id == "approve-large-transfer" and exc.value.decision == "require_approval"
    assert exc.value.code == "approval_required" and not isinstance(exc.value, Denied)
    assert exc.value.approval_id and exc.value.approval_id == exc.value.record["approval_id"]
    assert client.approval(exc.value.approval_id)["status"] == "pending"
    assert ran == []


def test_a_quarantined_output_raises_output_withheld(client: Client) -> None:
    session = client.open_session(task="read the deploy key")
    ran: list[str] = []

    @guarded(client, adapter="vault", session=session)
    def read_key(name: str) -> str:
        ran.append(name)
        return PRIVATE_KEY

    with pytest.raises(OutputWithheld) as exc:
        read_key("deploy")
    assert ran == ["deploy"]  # the function ran: its output is what is held
    assert exc.value.output_decision["rule_id"] == "withhold-private-keys"
    assert "BEGIN RSA" not in str(exc.value) and "BEGIN RSA" not in repr(exc.value.answer)
    assert [s["status"] for s in _steps(client, session)] == ["succeeded"]


def test_a_raising_function_is_reported_failed_and_reraised(client: Client) -> None:
    session = client.open_session(task="read a document")

    @guarded(client, adapter="docs", session=session)
    def read_document(name: str) -> str:
        raise FileNotFoundError(name)

    with pytest.raises(FileNotFoundError):
        read_document("missing.txt")
    steps = _steps(client, session)
    assert [(s["decision"], s["status"]) for s in steps] == [("allow", "failed")]


def test_async_functions_are_guarded(client: Client) -> None:
    session = client.open_session(task="fetch the CI credentials")
    ran: list[str] = []

    @guarded(client, adapter="vault", session=session)
    async def read_secret(name: str) -> dict[str, str]:
        await asyncio.sleep(0)
        ran.append(name)
        return {"name": name, "key": AWS_KEY}

    @guarded(client, adapter="bank", session=session)
    async def transfer(to: str, amount: float) -> str:
        ran.append(to)
        return "sent"

    assert asyncio.iscoroutinefunction(read_secret)

    async def agent() -> None:
        assert await read_secret("ci") == {"name": "ci", "key": "[REDACTED:aws_access_key]"}
        with pytest.raises(StepDenied) as exc:
            await transfer("mallory", 1)
        assert exc.value.rule_id == "deny-unknown-payee"

    asyncio.run(agent())
    assert ran == ["ci"]


def test_misuse_fails_before_any_step(client: Client, server: Server) -> None:
    session = client.open_session(task="t")
    with pytest.raises(TypeError, match="exactly one of"):
        guarded(client, adapter="docs")
    with pytest.raises(TypeError, match="exactly one of"):
        guarded(client, adapter="docs", session=session, job_id="job_x")

    @guarded(client, adapter="docs", session=session)
    def read(obj: Any) -> str:
        return "read"

    with pytest.raises(TypeError, match="must be JSON"):
        read(object())
    with pytest.raises(TypeError, match="must be JSON"):
        read(float("nan"))
    assert _steps(client, session) == []
    # Another identity's session is not found, as over HTTP.
    other = server.identity("sdk-other", adapters=["*"])
    with Client(server.url, api_key=other["api_key"]) as theirs:

        @guarded(theirs, adapter="docs", session=session.id)
        def peek() -> str:
            return "peeked"

        with pytest.raises(ApiError) as exc:
            peek()
        assert (exc.value.status, exc.value.code) == (404, "session_not_found")

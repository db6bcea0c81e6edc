"""The step guard of the SDK: a local Python function gated by the step gate, call by call.

    from gatehouse.client import Client, guarded
    gh = Client("http://127.0.0.1:8081", api_key="ghk_...")
    session = gh.open_session(task="pay the March invoice of Northwind Power")

    @guarded(gh, adapter="bank", session=session)
    def pay_bill(payee: str, amount: float, reference: str) -> dict[str, str]: ...

Theory of operation, per call of the decorated function:

1. The call's arguments, bound to their parameter names with the defaults applied (what the
   function will really run with), are the step's `params`; the action is the function's name
   unless `action=` names it; the step id is fresh per call (`<action>-<uuid4>`) unless `step_id=`
   derives it from the params.
2. The step is evaluated. `deny` raises `StepDenied`. `require_approval` raises
   `ApprovalRequired`, or with `wait=seconds` polls the approval and then asks again for the
   identical step (same id, same params): the gate answers `allow` once an approver approved it,
   `deny` once rejected or expired; still pending at the deadline raises `ApprovalRequired`.
3. On `allow` the function runs. Its return value is reported as the step's result and the call
   returns the output *as the gate answered it*: JSON (values that are not JSON are sent as their
   `str()`), redacted where the output rules redact. When the output gate withholds it
   (quarantine) the call raises `OutputWithheld`: the function has run, its output is held, and
   `None` would be indistinguishable from a function that returns nothing. An exception the
   function raises is reported as a `failed` step (its type and message) and re-raised.

`async def` functions are guarded too: the wrapper is a coroutine function and the HTTP calls run
in a worker thread (`asyncio.to_thread`), so the event loop never blocks on the gate.

The SDK's exceptions (this module and `gatehouse.client`):

    GatehouseError
     +-- ClientError                  raised by the SDK
          +-- ApiError                the server answered 4xx/5xx (`status`, `code`, `details`)
          +-- StepBlocked             the step gate did not allow a guarded call (`record`)
          |    +-- StepDenied         decision `deny` (also a `gatehouse.errors.Denied`)
          |    +-- ApprovalRequired   decision `require_approval` (`approval_id`)
          +-- OutputWithheld          the function ran; the output gate withheld its output

This module imports no HTTP library: the client is anything with `evaluate_step`, `step_result`
and `approval` (`StepClient`), so a guard can be tested against a fake.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ParamSpec, Protocol, TypeVar, cast

from gatehouse.errors import Denied, GatehouseError

__all__ = [
    "ApprovalRequired",
    "ClientError",
    "OutputWithheld",
    "StepBlocked",
    "StepClient",
    "StepDenied",
    "StepSession",
    "guarded",
]

P = ParamSpec("P")
R = TypeVar("R")

_ALLOW, _DENY, _APPROVAL = "allow", "deny", "require_approval"


class ClientError(GatehouseError):
    """Base of every error the SDK raises."""

    code = "client_error"


class StepBlocked(ClientError):
    """The step gate did not allow a guarded call; `record` is its decision record."""

    code = "step_blocked"

    def __init__(self, record: dict[str, Any], message: str | None = None) -> None:
        self.record = dict(record)
        self.decision: str = str(record.get("decision") or record.get("result") or "")
        self.rule_id: str | None = record.get("rule_id")
        self.reason: str | None = record.get("reason")
        self.decision_id: str | None = record.get("decision_id")
        self.step_id: str | None = record.get("step_id")
        self.session_id: str | None = record.get("session_id")
        self.target: str | None = record.get("target")
        text = message or f"`{self.target}` {self._verb()} by rule `{self.rule_id}`: {self.reason}"
        super().__init__(text, details={"decision": self.record})

    def _verb(self) -> str:
        return "blocked"


class StepDenied(StepBlocked, Denied):
    """The step gate denied the call (or its approval was rejected or expired)."""

    code = "step_denied"

    def _verb(self) -> str:
        return "denied"


class ApprovalRequired(StepBlocked):
    """The call waits for a human approver: `approval_id` names the approval to decide."""

    code = "approval_required"

    def __init__(self, record: dict[str, Any], message: str | None = None) -> None:
        self.approval_id: str | None = record.get("approval_id")
        super().__init__(record, message)

    def _verb(self) -> str:
        return f"needs approval `{self.approval_id}`"


class OutputWithheld(ClientError):
    """The guarded function ran, but the output gate withheld its output (quarantine)."""

    code = "output_withheld"

    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = dict(answer)
        self.step_id: str | None = answer.get("step_id")
        self.output_decision: dict[str, Any] = dict(answer.get("output_decision") or {})
        rule = self.output_decision.get("rule_id")
        super().__init__(
            f"the output of step `{self.step_id}` was withheld by output rule `{rule}`",
            details={"output_decision": self.output_decision},
        )


@dataclass(frozen=True, slots=True)
class StepSession:
    """A step session: its id, the task it was opened with, the server's answer."""

    id: str
    task: str = ""
    job_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_answer(cls, answer: dict[str, Any]) -> StepSession:
        return cls(
            id=answer["session_id"], task=answer.get("task") or "", job_id=answer.get("job_id"), data=answer
        )


class StepClient(Protocol):
    def evaluate_step(
        self,
        adapter: str,
        action: str,
        params: dict[str, Any],
        *,
        step_id: str | None = None,
        session_id: str | None = None,
        job_id: str | None = None,
    ) -> dict[str, Any]: ...

    def step_result(
        self,
        step_id: str,
        output: Any,
        *,
        status: str = "succeeded",
        session_id: str | None = None,
        job_id: str | None = None,
    ) -> dict[str, Any]: ...

    def approval(self, approval_id: str) -> dict[str, Any]: ...


def _jsonable(value: Any) -> Any:
    """`value` as the server will see it: JSON, anything else by its `str()`."""
    return json.loads(json.dumps(value, default=str))


@dataclass(frozen=True, slots=True)
class _Guard:
    """What one decorated function asks of the gate; the sync and async wrappers share it."""

    client: StepClient
    adapter: str
    action: str
    session_id: str | None
    job_id: str | None
    wait: float | None
    poll: float
    step_id: Callable[[dict[str, Any]], str] | None

    def new_step_id(self, params: dict[str, Any]) -> str:
        if self.step_id is not None:
            return self.step_id(params)
        return f"{self.action[:64]}-{uuid.uuid4().hex}"

    def evaluate(self, step_id: str, params: dict[str, Any]) -> dict[str, Any]:
        return self.client.evaluate_step(
            self.adapter, self.action, params, step_id=step_id, session_id=self.session_id, job_id=self.job_id
        )

    def admit(self, step_id: str, params: dict[str, Any]) -> dict[str, Any]:
        """The `allow` record of the step, or the exception that says why not."""
        record = self.evaluate(step_id, params)
        while True:
            decision = record.get("decision") or record.get("result")
            if decision == _ALLOW:
                return record
            if decision == _DENY:
                raise StepDenied(record)
            if decision != _APPROVAL:  # pragma: no cover - the server answers one of the three
                raise StepDenied(record, f"unexpected decision `{decision}` for step `{step_id}`")
            if self.wait is None or record.get("approval_id") is None:
                # A server without step approvals gives no approval id: nothing to wait for.
                raise ApprovalRequired(record)
            record = self._await(record, step_id, params)

    def _await(self, record: dict[str, Any], step_id: str, params: dict[str, Any]) -> dict[str, Any]:
        """Poll the record's approval until decided or the wait is over; then ask again."""
        approval_id = str(record["approval_id"])
        deadline = time.monotonic() + (self.wait or 0.0)
        while True:
            status = self.client.approval(approval_id).get("status")
            if status != "pending":
                break
            left = deadline - time.monotonic()
            if left <= 0:
                raise ApprovalRequired(
                    record, f"approval `{approval_id}` of step `{step_id}` still pending after {self.wait}s"
                )
            time.sleep(min(self.poll, left))
        again = self.evaluate(step_id, params)
        if again.get("decision") == _APPROVAL and again.get("approval_id") == approval_id:
            # Decided, yet the gate still waits on the same approval: it was not granted.
            raise StepDenied(again, f"approval `{approval_id}` of step `{step_id}` is `{status}`")
        # allow, deny, or a new approval (approved on a policy that changed since: asked again).
        return again

    def report(self, step_id: str, value: Any) -> Any:
        answer = self.client.step_result(
            step_id, _jsonable(value), session_id=self.session_id, job_id=self.job_id
        )
        if answer.get("withheld"):
            raise OutputWithheld(answer)
        return answer.get("output")

    def report_failure(self, step_id: str, exc: Exception) -> None:
        try:
            self.client.step_result(
                step_id,
                {"error": type(exc).__name__, "message": str(exc)[:2000]},
                status="failed",
                session_id=self.session_id,
                job_id=self.job_id,
            )
        except Exception as report_exc:  # the function's own error is the one to raise
            exc.add_note(f"gatehouse: reporting the failed step `{step_id}` failed: {report_exc}")


def _binder(fn: Callable[..., Any]) -> Callable[[tuple[Any, ...], dict[str, Any]], dict[str, Any]]:
    """A function from a call's (args, kwargs) to its params: names bound, defaults applied."""
    signature = inspect.signature(fn)
    names = list(signature.parameters)
    skip = names[0] if names and names[0] in ("self", "cls") else None

    def bind(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        params: dict[str, Any] = {}
        for name, value in bound.arguments.items():
            kind = signature.parameters[name].kind
            if name == skip:
                continue
            if kind is inspect.Parameter.VAR_KEYWORD:
                params.update(value)
            elif kind is inspect.Parameter.VAR_POSITIONAL:
                params[name] = list(value)
            else:
                params[name] = value
        try:
            # Strict: the policy must judge the values the function runs with, not a lossy copy.
            return cast(dict[str, Any], json.loads(json.dumps(params, allow_nan=False)))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"the arguments of `{fn.__name__}` must be JSON to be gated: {exc}") from None

    return bind


def guarded(
    client: StepClient,
    *,
    adapter: str,
    action: str | None = None,
    session: StepSession | str | None = None,
    job_id: str | None = None,
    wait: float | None = None,
    poll: float = 0.5,
    step_id: Callable[[dict[str, Any]], str] | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Gate every call of the decorated function as the step `adapter:<adapter>:<action>`.

    `session` is a `StepSession` (from `Client.open_session`) or a session id; inside a job give
    `job_id` instead. Every guarded function of one agent should share one session: the gate
    judges a step by what the session did before (what it read, and from where).
    """
    if (session is None) == (job_id is None):
        raise TypeError("guarded() needs exactly one of `session=` and `job_id=`")
    if wait is not None and wait < 0:
        raise ValueError("`wait` must be a number of seconds, at least 0")
    if poll <= 0:
        raise ValueError("`poll` must be a positive number of seconds")
    session_id = session.id if isinstance(session, StepSession) else session

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        guard = _Guard(
            client=client,
            adapter=adapter,
            action=action or fn.__name__,
            session_id=session_id,
            job_id=job_id,
            wait=wait,
            poll=poll,
            step_id=step_id,
        )
        bind = _binder(fn)

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                params = bind(args, kwargs)
                sid = guard.new_step_id(params)
                await asyncio.to_thread(guard.admit, sid, params)
                try:
                    value = await fn(*args, **kwargs)
                except Exception as exc:
                    await asyncio.to_thread(guard.report_failure, sid, exc)
                    raise
                return await asyncio.to_thread(guard.report, sid, value)

            return cast(Callable[P, R], run_async)

        @functools.wraps(fn)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            params = bind(args, kwargs)
            sid = guard.new_step_id(params)
            guard.admit(sid, params)
            try:
                value = fn(*args, **kwargs)
            except Exception as exc:
                guard.report_failure(sid, exc)
                raise
            return cast(R, guard.report(sid, value))

        return run

    return decorate

"""The Python SDK for agents, workers and operators.

    from gatehouse.client import Client
    gh = Client("http://127.0.0.1:8081", api_key="ghk_...")
    job = gh.submit("job.demo.read", prompt="status")

Errors from the server become `ApiError` with the server's `code`, `status` and `details`.

Tool calls (the step gate): `open_session`, `evaluate_step`, `step_result`, `session`,
`approval`, and the decorator `guarded` (`gatehouse.guard`, which draws the SDK's exception tree).

    session = gh.open_session(task="pay the March invoice of Northwind Power")

    @guarded(gh, adapter="bank", session=session)
    def pay_bill(payee: str, amount: float, reference: str) -> dict[str, str]: ...
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from gatehouse.guard import (
    ApprovalRequired,
    ClientError,
    OutputWithheld,
    StepBlocked,
    StepDenied,
    StepSession,
    guarded,
)

__all__ = [
    "ApiError",
    "ApprovalRequired",
    "Client",
    "ClientError",
    "OutputWithheld",
    "StepBlocked",
    "StepDenied",
    "StepSession",
    "guarded",
]


class ApiError(ClientError):
    def __init__(self, status: int, code: str, message: str, details: Any = None, body: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}", code=code, details=details)
        self.status = status
        self.body = body


class Client:
    def __init__(
        self,
        url: str,
        *,
        api_key: str,
        tenant: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"X-API-Key": api_key}
        if tenant:
            headers["X-Tenant-ID"] = tenant
        self._http = httpx.Client(
            base_url=url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, json: Any = None, **params: Any) -> Any:
        query = {k: v for k, v in params.items() if v is not None}
        response = self._http.request(method, path, json=json, params=query or None)
        if response.status_code >= 400:
            try:
                body = response.json()
                err = body.get("error", {})
            except ValueError:
                body, err = response.text, {}
            raise ApiError(
                response.status_code,
                err.get("code", "http_error"),
                err.get("message", response.text[:200]),
                err.get("details"),
                body,
            )
        return response.json() if response.content else None

    # agents
    def submit(
        self,
        topic: str,
        *,
        prompt: str = "",
        labels: dict[str, str] | None = None,
        capability: str | None = None,
        risk_tags: list[str] | None = None,
        idempotency_key: str | None = None,
        attachments: list[dict[str, str]] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"topic": topic, "prompt": prompt, "labels": labels or {}}
        meta: dict[str, Any] = {}
        if capability:
            meta["capability"] = capability
        if risk_tags:
            meta["risk_tags"] = risk_tags
        if meta:
            body["meta"] = meta
        if idempotency_key:
            body["idempotency_key"] = idempotency_key
        if attachments:
            body["attachments"] = attachments
        result: dict[str, Any] = self.request("POST", "/api/v1/jobs", body)
        return result

    def job(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", f"/api/v1/jobs/{job_id}")
        return result

    def decisions(self, job_id: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.request("GET", f"/api/v1/jobs/{job_id}/decisions")["decisions"]
        return result

    # tool calls: the step gate
    def open_session(self, *, task: str, session_id: str | None = None) -> StepSession:
        """Open a step session for `task`: the trusted request that `from_prompt` rules read."""
        body: dict[str, Any] = {"task": task}
        if session_id is not None:
            body["session_id"] = session_id
        return StepSession.from_answer(self.request("POST", "/api/v1/sessions", body))

    def session(self, session_id: str, *, detail: str | None = None) -> dict[str, Any]:
        """A session with its steps, their decisions and its history facts; `detail="replay"`
        (admins only) adds each step's params, kept output and job fields."""
        result: dict[str, Any] = self.request("GET", f"/api/v1/sessions/{session_id}", detail=detail)
        return result

    def evaluate_step(
        self,
        adapter: str,
        action: str,
        params: dict[str, Any],
        *,
        step_id: str | None = None,
        session_id: str | None = None,
        job_id: str | None = None,
    ) -> dict[str, Any]:
        """The step gate's decision record for a proposed tool call (it does not raise on deny).

        Without `session_id` or `job_id` the server opens a session (its id is in the answer);
        without `step_id` one is made up (`step-<uuid4>`).
        """
        body: dict[str, Any] = {
            "step_id": step_id or f"step-{uuid.uuid4().hex}",
            "adapter": adapter,
            "action": action,
            "params": params,
        }
        if session_id is not None:
            body["session_id"] = session_id
        if job_id is not None:
            body["job_id"] = job_id
        result: dict[str, Any] = self.request("POST", "/api/v1/steps/evaluate", body)
        return result

    def step_result(
        self,
        step_id: str,
        output: Any,
        *,
        status: str = "succeeded",
        session_id: str | None = None,
        job_id: str | None = None,
    ) -> dict[str, Any]:
        """Report an allowed step's output; the answer holds it as the agent may see it
        (`output`, redacted; `withheld` when quarantined; `output_decision`)."""
        body: dict[str, Any] = {"step_id": step_id, "status": status, "output": output}
        if session_id is not None:
            body["session_id"] = session_id
        if job_id is not None:
            body["job_id"] = job_id
        result: dict[str, Any] = self.request("POST", "/api/v1/steps/result", body)
        return result

    def approval(self, approval_id: str) -> dict[str, Any]:
        """One approval (its `status`: pending, approved, rejected, expired, ...)."""
        result: dict[str, Any] = self.request("GET", f"/api/v1/approvals/{approval_id}")
        return result

    def simulate(self, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", "/api/v1/policy/simulate", body)
        return result

    def explain(self, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", "/api/v1/policy/explain", body)
        return result

    # workers
    def lease(
        self,
        topics: list[str],
        *,
        max_jobs: int = 1,
        lease_seconds: int = 60,
        wait_seconds: float = 0,
    ) -> list[dict[str, Any]]:
        body = {
            "topics": topics,
            "max_jobs": max_jobs,
            "lease_seconds": lease_seconds,
            "wait_seconds": wait_seconds,
        }
        result: list[dict[str, Any]] = self.request("POST", "/api/v1/worker/lease", body)["jobs"]
        return result

    def heartbeat(self, job_id: str, *, lease_seconds: int = 60) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "POST", f"/api/v1/worker/jobs/{job_id}/heartbeat", {"lease_seconds": lease_seconds}
        )
        return result

    def result(
        self, job_id: str, *, status: str, output: Any = None, error: str | None = None
    ) -> dict[str, Any]:
        body = {"status": status, "output": output, "error": error}
        result: dict[str, Any] = self.request("POST", f"/api/v1/worker/jobs/{job_id}/result", body)
        return result

    # operators
    def create_identity(
        self,
        name: str,
        *,
        tenant: str = "default",
        roles: list[str] | None = None,
        topics: list[str] | None = None,
        capabilities: list[str] | None = None,
        adapters: list[str] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": name,
            "tenant": tenant,
            "roles": roles or ["agent"],
            "topics": topics if topics is not None else ["**"],
            "capabilities": capabilities if capabilities is not None else ["*"],
        }
        if adapters is not None:
            body["adapters"] = adapters
        result: dict[str, Any] = self.request("POST", "/api/v1/identities", body)
        return result

    def _every_page(self, path: str, key: str, **params: Any) -> list[dict[str, Any]]:
        """Every row of a paged listing: follows `next_cursor` to the end (500 rows a request)."""
        rows: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = self.request("GET", path, limit=500, cursor=cursor, **params)
            rows += page[key]
            cursor = page.get("next_cursor")
            if not cursor:
                return rows

    def identities(self) -> list[dict[str, Any]]:
        """Every identity the key may see (all pages)."""
        return self._every_page("/api/v1/identities", "identities")

    def revoke_identity(self, identity_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("DELETE", f"/api/v1/identities/{identity_id}")
        return result

    def contain(self, *, reason: str, **target: str) -> dict[str, Any]:
        """Contain one `tenant=`, `identity=` (or `adapter=`) during an incident (admin)."""
        result: dict[str, Any] = self.request(
            "POST", "/api/v1/incidents/contain", json={**target, "reason": reason}
        )
        return result

    def incidents(self, *, active: bool = True) -> list[dict[str, Any]]:
        """Every containment the key may see (all pages); lifted ones too unless `active`."""
        return self._every_page("/api/v1/incidents", "incidents", active=str(active).lower())

    def incident_status(
        self, *, window: str = "5m", baseline: str = "1h", threshold: float = 3.0
    ) -> dict[str, Any]:
        """Containments in force and each incident signal's recent rate against its baseline."""
        result: dict[str, Any] = self.request(
            "GET", "/api/v1/incidents/status", window=window, baseline=baseline, threshold=threshold
        )
        return result

    def lift(self, incident_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", f"/api/v1/incidents/{incident_id}/lift")
        return result

    def policy(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/api/v1/policy")
        return result

    def put_shadow_policy(self, bundle: str, signature: dict[str, Any] | None = None) -> dict[str, Any]:
        """Install a shadow bundle: judged beside the live one, never enforced (admin)."""
        body: dict[str, Any] = {"bundle": bundle}
        if signature is not None:
            body["signature"] = signature
        result: dict[str, Any] = self.request("PUT", "/api/v1/policy/shadow", body)
        return result

    def shadow_policy(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/api/v1/policy/shadow")
        return result

    def shadow_diff(self, *, limit: int = 100) -> dict[str, Any]:
        """The decisions the shadow bundle disagreed on, newest first."""
        result: dict[str, Any] = self.request("GET", "/api/v1/policy/shadow/diff", limit=limit)
        return result

    def delete_shadow_policy(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("DELETE", "/api/v1/policy/shadow")
        return result

    def put_policy(self, bundle: str, signature: dict[str, Any] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"bundle": bundle}
        if signature is not None:
            body["signature"] = signature
        result: dict[str, Any] = self.request("PUT", "/api/v1/policy", body)
        return result

"""A worker handler's failure as the agent sees it: a short error with an id, never a traceback.

A handler's exception text and traceback can hold file paths, hostnames and secrets (a connection
string in a driver's error), and the job's result goes back to the agent that submitted it. So
the result carries only a code, a fixed message and an error id; the worker's own log keeps the
whole traceback under that id, for the operator who has to find it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from gatehouse.domain.ids import new_id

__all__ = ["HANDLER_ERROR", "SANDBOX_KILLED", "HandlerFailure", "handler_failed", "sandbox_failed"]

HANDLER_ERROR = "handler_error"
# An isolated handler's sandbox ended it (a limit crossed) or could not run it.
SANDBOX_KILLED = "sandbox_killed"


@dataclass(frozen=True)
class HandlerFailure:
    error_id: str
    code: str = HANDLER_ERROR
    # For SANDBOX_KILLED: the limit (`wall_seconds`, `cpu_seconds`, `processes`, `signal`) or
    # what else ended the sandbox; a word of Gatehouse's, never text of the handler's.
    reason: str | None = None

    @property
    def message(self) -> str:
        if self.code == SANDBOX_KILLED:
            return f"handler stopped by its sandbox: {self.reason} (error id {self.error_id})"
        return f"handler failed (error id {self.error_id})"

    def output(self) -> dict[str, Any]:
        """The job's result: what the agent reads in place of the handler's output."""
        error: dict[str, Any] = {"code": self.code, "message": self.message, "error_id": self.error_id}
        if self.reason is not None:
            error["reason"] = self.reason
        return {"error": error}


def handler_failed(log: logging.Logger, job_id: str, exc: BaseException) -> HandlerFailure:
    """Log `exc` with its traceback under a new error id; the failure to report for the job."""
    failure = HandlerFailure(new_id("err"))
    log.error("job %s: handler failed (error id %s)", job_id, failure.error_id, exc_info=exc)
    return failure


_REASONS = ("processes", "wall_seconds", "cpu_seconds", "signal")


def sandbox_failed(log: logging.Logger, job_id: str, event: dict[str, Any]) -> HandlerFailure:
    """Log what the sandbox said under a new error id; the failure to report for the job."""
    reason = event.get("reason") if event.get("event") == "killed" else None
    failure = HandlerFailure(
        new_id("err"), code=SANDBOX_KILLED, reason=reason if reason in _REASONS else "no_answer"
    )
    log.error("job %s: handler stopped by its sandbox (error id %s): %s", job_id, failure.error_id, event)
    return failure

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

__all__ = ["HANDLER_ERROR", "HandlerFailure", "handler_failed"]

HANDLER_ERROR = "handler_error"


@dataclass(frozen=True)
class HandlerFailure:
    error_id: str

    @property
    def message(self) -> str:
        return f"handler failed (error id {self.error_id})"

    def output(self) -> dict[str, Any]:
        """The job's result: what the agent reads in place of the handler's output."""
        return {"error": {"code": HANDLER_ERROR, "message": self.message, "error_id": self.error_id}}


def handler_failed(log: logging.Logger, job_id: str, exc: BaseException) -> HandlerFailure:
    """Log `exc` with its traceback under a new error id; the failure to report for the job."""
    failure = HandlerFailure(new_id("err"))
    log.error("job %s: handler failed (error id %s)", job_id, failure.error_id, exc_info=exc)
    return failure

"""The kernel in its own process, and the client the service uses to reach it.

Protocol: newline-delimited JSON over a Unix socket, requests tagged with an `id` so that many
can be in flight on one connection.

    -> {"id": 1, "op": "install", "bundle": "<policy text>"}   <- {"id": 1, "snapshot": "..."}
    -> {"id": 2, "op": "decide", "ctx": {...}, "stage": "submit"}
    <- {"id": 2, "decision": "deny", "rule_id": "...", "reason": "...", "remediations": [...],
        "approval_ttl": null, "snapshot": "...", "cached": false}

The service keeps verifying and storing bundles itself and pushes the text to the kernel, so a
restarted kernel gets the running bundle again on the first request. Any failure to answer
within the deadline (process down, timeout, error) is "kernel unavailable": the fail mode of
the topic applies, exactly as for an in-process evaluation error.

Reachability is tracked from what decisions already see (and the connection closing), so that
the service logs one warning when the kernel goes away and one line when it is back; `/readyz`
asks `probe`, a ping with its own short deadline, so that readiness costs decisions nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gatehouse.errors import PolicyError
from gatehouse.kernel.kernel import Kernel, Verdict
from gatehouse.metrics import Metrics
from gatehouse.policy import Decision, Policy, Remediation, load

__all__ = ["RemoteKernel", "serve_kernel"]

log = logging.getLogger("gatehouse.kernel")
_LIMIT = 8 * 1024 * 1024
# `/readyz` waits this long for a ping: longer than a decision's deadline, because a readiness
# check that flaps under load would take a busy but healthy service out of rotation.
PROBE_SECONDS = 0.5


async def serve_kernel(socket_path: Path) -> None:
    """Run a kernel process on `socket_path` until cancelled."""
    kernel = Kernel(metrics=Metrics())

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                reply = _answer(kernel, line)
                writer.write(json.dumps(reply, separators=(",", ":")).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    with contextlib.suppress(FileNotFoundError):
        socket_path.unlink()
    server = await asyncio.start_unix_server(handle, path=str(socket_path), limit=_LIMIT)
    os.chmod(socket_path, 0o600)
    log.info("kernel listening on %s", socket_path)
    async with server:
        await server.serve_forever()


def _answer(kernel: Kernel, line: bytes) -> dict[str, Any]:
    try:
        request = json.loads(line)
        rid = request.get("id")
    except (ValueError, AttributeError):
        return {"id": None, "error": "malformed request"}
    op = request.get("op")
    if op == "install":
        try:
            kernel.install(load(request["bundle"]))
        except (PolicyError, KeyError, TypeError) as exc:
            return {"id": rid, "error": f"install failed: {exc}"}
        return {"id": rid, "snapshot": kernel.snapshot}
    if op == "decide":
        verdict = kernel.decide_now(request.get("ctx") or {}, stage=str(request.get("stage")))
        if verdict.unavailable:
            return {"id": rid, "error": verdict.unavailable, "snapshot": kernel.snapshot}
        d = verdict.decision
        return {
            "id": rid,
            "decision": d.decision,
            "rule_id": d.rule_id,
            "reason": d.reason,
            "remediations": [r.to_dict() for r in d.remediations],
            "approval_ttl": d.approval_ttl,
            "snapshot": verdict.snapshot,
            "cached": verdict.cached,
        }
    if op == "ping":
        return {"id": rid, "snapshot": kernel.snapshot}
    return {"id": rid, "error": f"unknown op `{op}`"}


class _Unavailable(Exception):
    pass


class RemoteKernel(Kernel):
    """A `Kernel` whose decisions are made by a kernel process, with a deadline."""

    def __init__(
        self,
        *,
        metrics: Metrics,
        socket_path: Path,
        deadline: float = 0.05,
        default_fail_mode: str = "closed",
    ) -> None:
        super().__init__(metrics=metrics, default_fail_mode=default_fail_mode)
        self.socket_path = socket_path
        self.deadline = deadline
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._remote_snapshot: str | None = None
        self._connect_lock = asyncio.Lock()
        self._next_connect = 0.0
        self._reachable: bool | None = None  # unknown until the first exchange

    async def probe(self, timeout: float = PROBE_SECONDS) -> str | None:
        try:
            reply = await asyncio.wait_for(self._ping(), timeout)
        except (TimeoutError, _Unavailable, OSError) as exc:
            why = f"kernel process unreachable: {exc or type(exc).__name__}"
            self._set_reachable(False, why)
            return why
        if "error" in reply:
            return f"kernel process answered: {reply['error']}"
        self._set_reachable(True)
        return None

    async def _ping(self) -> dict[str, Any]:
        await self._ensure_connected()
        return await self._call({"op": "ping"})

    def _set_reachable(self, reachable: bool, why: str = "") -> None:
        if reachable is self._reachable:
            return
        was, self._reachable = self._reachable, reachable
        if not reachable:
            log.warning(
                "kernel process at %s is unreachable (%s); decisions take the fail mode until it is back",
                self.socket_path,
                why,
            )
        elif was is False:
            log.info("kernel process at %s is reachable again", self.socket_path)

    async def decide(self, ctx: Mapping[str, Any], *, stage: str) -> Verdict:
        policy = self.policy
        if policy is None:
            return self._unavailable(ctx, stage, "no policy bundle is loaded")
        try:
            reply = await asyncio.wait_for(self._decide_remote(policy, ctx, stage), self.deadline)
        except (TimeoutError, _Unavailable, OSError) as exc:
            why = f"kernel process unreachable: {exc or type(exc).__name__}"
            self._set_reachable(False, why)
            return self._unavailable(ctx, stage, why)
        if self._reachable is not True:
            self._set_reachable(True)
        decision = Decision(
            decision=reply["decision"],
            rule_id=reply["rule_id"],
            reason=reply["reason"],
            remediations=tuple(
                Remediation(
                    id=r["id"],
                    description=r.get("description", ""),
                    set=r.get("set", {}),
                    set_labels=r.get("set_labels", {}),
                )
                for r in reply.get("remediations", ())
            ),
            approval_ttl=reply.get("approval_ttl"),
        )
        self.metrics.decision(stage, decision.decision, decision.rule_id)
        return Verdict(decision=decision, snapshot=reply.get("snapshot"), cached=bool(reply.get("cached")))

    async def _decide_remote(self, policy: Policy, ctx: Mapping[str, Any], stage: str) -> dict[str, Any]:
        await self._ensure_connected()
        if self._remote_snapshot != policy.snapshot:
            reply = await self._call({"op": "install", "bundle": policy.text})
            if "error" in reply:
                raise _Unavailable(reply["error"])
            self._remote_snapshot = reply.get("snapshot")
        reply = await self._call({"op": "decide", "ctx": dict(ctx), "stage": stage})
        if "error" in reply:
            if reply.get("snapshot") != policy.snapshot:
                self._remote_snapshot = None  # the kernel lost its bundle: push it next time
            raise _Unavailable(reply["error"])
        if reply.get("snapshot") != policy.snapshot:
            self._remote_snapshot = None
            raise _Unavailable("the kernel answered for another snapshot")
        return reply

    async def _ensure_connected(self) -> None:
        if self._writer is not None and not self._writer.is_closing():
            return
        async with self._connect_lock:
            if self._writer is not None and not self._writer.is_closing():
                return
            loop = asyncio.get_running_loop()
            if loop.time() < self._next_connect:
                raise _Unavailable("kernel process is down (reconnect backing off)")
            self._next_connect = loop.time() + 0.2
            reader, writer = await asyncio.open_unix_connection(str(self.socket_path), limit=_LIMIT)
            self._writer = writer
            self._remote_snapshot = None
            self._reader_task = asyncio.create_task(self._read(reader))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        closing = False
        try:
            while line := await reader.readline():
                reply = json.loads(line)
                fut = self._pending.pop(reply.get("id"), None)
                if fut is not None and not fut.done():
                    fut.set_result(reply)
        except (ConnectionError, ValueError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            closing = True  # `close()`: the service is stopping, the kernel did nothing wrong
            raise
        finally:
            self._drop_connection("kernel connection closed")
            if not closing:
                # Said now, not at the next decision: the kernel may die while nobody submits.
                self._set_reachable(False, "the kernel process closed the connection")

    def _drop_connection(self, why: str) -> None:
        if self._writer is not None:
            self._writer.close()
        self._writer = None
        self._remote_snapshot = None
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(_Unavailable(why))

    async def _call(self, request: dict[str, Any]) -> dict[str, Any]:
        writer = self._writer
        if writer is None:
            raise _Unavailable("not connected")
        rid = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        try:
            writer.write(json.dumps({**request, "id": rid}, separators=(",", ":")).encode() + b"\n")
            await writer.drain()
            return await fut
        except (ConnectionError, RuntimeError) as exc:
            self._drop_connection(str(exc))
            raise _Unavailable(str(exc)) from None
        finally:
            self._pending.pop(rid, None)

    async def close(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
        self._drop_connection("closing")

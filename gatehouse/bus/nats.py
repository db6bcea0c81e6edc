"""The NATS bus: JetStream for what must not be lost, core NATS for broadcasts.

`jobs.queued` wake-ups go through a JetStream stream (`GATEHOUSE`, kept an hour): a scheduler
whose connection drops for a moment gets, when it is back, the wake-ups published meanwhile
(each subscription is an ordered consumer that resumes where it was). `policy.changed` and
`identity.revoked` are broadcasts on core NATS: a replica that misses one catches up through
its periodic check of the store (the store stays the source of truth, `bus.base`).

A wake-up is a hint (its handlers read the store, not the payload), so the publisher does not wait
for JetStream's ack: `publish` hands it to a per-subject pump and returns, and the wake-ups given
while one is being acknowledged collapse into one that follows it (the latest payload). Under load
that is one acknowledged publish per round trip to the server instead of one per submit, and
the schedulers wake once for the lot.

Subjects are prefixed (`gatehouse.` by default) so several deployments can share a server.
Handlers run as tasks, apart from the connection's reader and from each other; publishing never
raises (a notification is best effort) and drops what it is given after `close`. Only this
module imports nats-py (the `nats` extra).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import nats
import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError

from gatehouse.bus.base import Bus, Handler, Subscription
from gatehouse.bus.subjects import JOBS_QUEUED
from gatehouse.errors import Unavailable

__all__ = ["DURABLE_SUBJECTS", "NatsBus"]

log = logging.getLogger("gatehouse.bus")

# Subjects carried by JetStream; the rest are core NATS broadcasts.
DURABLE_SUBJECTS = frozenset({JOBS_QUEUED})
_STREAM = "GATEHOUSE"
_KEEP_SECONDS = 3600.0
_PUBLISH_TIMEOUT = 2.0


class _NatsSubscription(Subscription):
    def __init__(self, sub: Any) -> None:
        self._sub = sub
        self._done = False

    async def unsubscribe(self) -> None:
        if self._done:
            return
        self._done = True
        try:
            await self._sub.unsubscribe()
        except Exception:  # the connection is closed or gone: nothing more is delivered anyway
            log.debug("unsubscribe after the connection closed", exc_info=True)


class NatsBus(Bus):
    def __init__(self, *, url: str, prefix: str = "gatehouse.", connect_timeout: float = 2.0) -> None:
        self.url = url
        self.prefix = prefix
        self.connect_timeout = connect_timeout
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = True
        # Durable wake-ups waiting for the pump of their subject (the latest payload per subject).
        self._pending: dict[str, bytes] = {}
        self._pumps: dict[str, asyncio.Task[None]] = {}

    async def open(self) -> None:
        try:
            # Bounded here: with unlimited reconnects (below) the client would retry a server
            # that is not there at start for ever.
            nc = await asyncio.wait_for(self._connect(), self.connect_timeout + 1)
        except Exception as exc:
            raise Unavailable(
                f"cannot reach the bus at {self.url}: {str(exc) or type(exc).__name__}",
                code="bus_unavailable",
            ) from None
        self._nc = nc
        self._js = nc.jetstream()
        await self._ensure_stream()
        self._closed = False

    async def _connect(self) -> Client:
        return await nats.connect(
            self.url,
            connect_timeout=int(max(1, self.connect_timeout)),
            reconnect_time_wait=1,
            max_reconnect_attempts=-1,  # keep trying: the store carries the work meanwhile
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
            name="gatehouse",
        )

    async def _ensure_stream(self) -> None:
        assert self._js is not None
        subjects = sorted(self.prefix + s for s in DURABLE_SUBJECTS)
        try:
            await self._js.stream_info(_STREAM)
            return
        except NotFoundError:
            pass
        try:
            await self._js.add_stream(
                name=_STREAM, subjects=subjects, max_age=_KEEP_SECONDS, max_msgs=100_000
            )
        except Exception:
            # Another replica created it between our look and our add.
            await self._js.stream_info(_STREAM)

    async def close(self) -> None:
        self._closed = True
        pumps = [t for t in self._pumps.values() if not t.done()]
        if pumps:
            # The wake-ups given before close still go out (bounded: the server may be gone).
            await asyncio.wait(pumps, timeout=_PUBLISH_TIMEOUT)
        for task in [*self._tasks, *pumps]:
            task.cancel()
        self._tasks.clear()
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None and not nc.is_closed:
            try:
                await nc.close()
            except Exception:
                log.debug("closing the NATS connection failed", exc_info=True)

    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    async def ping(self) -> str | None:
        """None when the server answers, else why not (for `/readyz`)."""
        if self._nc is None or not self._nc.is_connected:
            return "bus disconnected"
        try:
            await self._nc.flush(timeout=1)
        except Exception as exc:
            return f"bus unreachable: {type(exc).__name__}"
        return None

    async def publish(self, subject: str, data: dict[str, Any]) -> None:
        if self._closed or self._nc is None or self._js is None:
            return  # notifications are best effort: the store has the truth
        if not self._nc.is_connected:
            # While the client reconnects a JetStream publish would wait out its ack timeout (2 s
            # added to every submit); the subscribers poll the store, so skip it at once.
            log.debug("bus down: not publishing %s", subject)
            return
        payload = orjson.dumps(data)
        if subject in DURABLE_SUBJECTS:
            self._pending[subject] = payload
            if subject not in self._pumps:
                self._pumps[subject] = asyncio.create_task(self._pump(subject))
            return
        try:
            await self._nc.publish(self.prefix + subject, payload)
        except Exception as exc:
            log.warning("bus publish on %s failed: %s", subject, exc)

    async def _pump(self, subject: str) -> None:
        """Publish `subject`'s pending wake-up until none is left, one ack at a time."""
        try:
            while (payload := self._pending.pop(subject, None)) is not None:
                js = self._js
                if js is None or self._nc is None or not self._nc.is_connected:
                    # While the client reconnects a publish would wait out its ack timeout; the
                    # subscribers poll the store meanwhile.
                    log.debug("bus down: not publishing %s", subject)
                    continue
                try:
                    await js.publish(self.prefix + subject, payload, timeout=_PUBLISH_TIMEOUT)
                except Exception as exc:
                    # The subscribers poll the store: a lost wake-up delays work by one poll interval.
                    log.warning("bus publish on %s failed: %s", subject, exc)
        finally:
            self._pumps.pop(subject, None)

    async def subscribe(self, subject: str, handler: Handler) -> Subscription:
        if self._nc is None or self._js is None:
            raise RuntimeError("bus is not open")

        async def deliver(msg: Msg) -> None:
            if self._closed:
                return
            try:
                data = orjson.loads(msg.data)
            except orjson.JSONDecodeError:
                log.warning("dropped a message on %s that is not JSON", subject)
                return
            task = asyncio.create_task(self._run(handler, subject, data))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        if subject in DURABLE_SUBJECTS:
            sub: Any = await self._js.subscribe(
                self.prefix + subject,
                cb=deliver,
                stream=_STREAM,
                ordered_consumer=True,
                deliver_policy=api.DeliverPolicy.NEW,
            )
        else:
            sub = await self._nc.subscribe(self.prefix + subject, cb=deliver)
            # The server knows of the subscription before anything is published after this.
            await self._nc.flush(timeout=2)
        return _NatsSubscription(sub)

    @staticmethod
    async def _run(handler: Handler, subject: str, data: dict[str, Any]) -> None:
        try:
            await handler(data)
        except Exception:  # a broken subscriber must not break the others
            log.exception("bus handler for %s failed", subject)

    async def _on_error(self, exc: Exception) -> None:
        log.debug("NATS: %s", exc)

    async def _on_disconnected(self) -> None:
        if not self._closed:
            log.warning("bus disconnected from %s (reconnecting; work goes on through polling)", self.url)

    async def _on_reconnected(self) -> None:
        log.warning("bus reconnected to %s", self.url)

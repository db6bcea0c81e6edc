"""The audit witness: an append-only copy of every head, checkpoint and root, outside the data
directory (the seed's "replicated to an external incident response store").

Why: signatures prove who wrote a checkpoint, not that nothing came after it. Someone who can
write the database can cut the tail written since the last sealing, or roll the whole log back
to an earlier consistent state; someone who also holds the signing key can rewrite and re-sign
anything. A witness they cannot rewrite remembers what was there: `audit verify --witness`
refuses a log that lost or changed anything the witness saw.

What it receives (JSON Lines, one object per line, `record` naming the kind):
- `head` `{stream, seq, hash}` after every commit that moved the stream (no signature: it is
  cheap, one `write` per commit, and the witness is trusted by where it lives);
- `checkpoint` and `root`, as stored, at every sealing (every couple of seconds).

Forms:
- `FileWitness(path)`: a file opened `O_APPEND` (on another disk, a mount only root can write,
  a file with `chattr +a`); written by the event loop without fsync (the page cache survives a
  `kill -9`; `sync()` is called off the loop after each sealing).
- `HttpWitness(url)`: each batch POSTed as `application/x-ndjson` to a collector by a
  background thread; a collector that is down loses nothing until the queue bound is reached
  (then the oldest heads are dropped and a gap is logged; roots are always kept).
"""

from __future__ import annotations

import collections
import json
import logging
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

__all__ = ["FileWitness", "HttpWitness", "Witness", "open_witness", "read_witness"]

log = logging.getLogger("gatehouse.audit")


class Witness(Protocol):
    def append(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Record `records`, in order; must not block for long (it runs after a commit)."""

    def sync(self) -> None:
        """Make what was appended durable (called off the event loop, after each sealing)."""

    def close(self) -> None: ...


def _lines(records: Iterable[Mapping[str, Any]]) -> bytes:
    return b"".join(json.dumps(r, sort_keys=True, separators=(",", ":")).encode() + b"\n" for r in records)


class FileWitness:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # O_APPEND: every write lands at the end, whatever else writes the file.
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def append(self, records: Sequence[Mapping[str, Any]]) -> None:
        if self._fd is None or not records:
            return
        data = _lines(records)
        try:
            while data:
                data = data[os.write(self._fd, data) :]
        except OSError:
            log.exception("audit witness %s: write failed (verify will report the gap)", self.path)

    def sync(self) -> None:
        if self._fd is not None:
            try:
                os.fsync(self._fd)
            except OSError:
                log.exception("audit witness %s: fsync failed", self.path)

    def close(self) -> None:
        if self._fd is not None:
            self.sync()
            os.close(self._fd)
            self._fd = None


class HttpWitness:
    """POSTs batches to `url` from a background thread (never from the event loop)."""

    MAX_QUEUED = 100_000

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        self.url = url
        self.timeout = timeout
        self._queue: collections.deque[Mapping[str, Any]] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="gatehouse-witness", daemon=True)
        self._thread.start()

    def append(self, records: Sequence[Mapping[str, Any]]) -> None:
        with self._cond:
            self._queue.extend(records)
            while len(self._queue) > self.MAX_QUEUED:
                dropped = self._queue.popleft()
                if dropped.get("record") == "root":
                    self._queue.append(dropped)  # roots are what verify needs most: keep them
                    break
                log.error("audit witness %s unreachable: dropping queued heads", self.url)
            self._cond.notify()

    def sync(self) -> None:
        with self._cond:
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(self.timeout + 1)

    def _run(self) -> None:
        import httpx

        with httpx.Client(timeout=self.timeout) as client:
            while True:
                with self._cond:
                    while not self._queue and not self._closed:
                        self._cond.wait(1.0)
                    if not self._queue and self._closed:
                        return
                    batch = list(self._queue)
                try:
                    r = client.post(
                        self.url, content=_lines(batch), headers={"Content-Type": "application/x-ndjson"}
                    )
                    r.raise_for_status()
                except httpx.HTTPError as exc:
                    log.error("audit witness %s: %s (retrying)", self.url, exc)
                    with self._cond:
                        if self._closed:
                            return
                        self._cond.wait(1.0)
                    continue
                with self._cond:
                    for _ in range(min(len(batch), len(self._queue))):
                        self._queue.popleft()


def open_witness(target: str) -> Witness:
    """`http(s)://...` posts to a collector; anything else is a file path."""
    if target.startswith(("http://", "https://")):
        return HttpWitness(target)
    return FileWitness(Path(target).expanduser())


def read_witness(source: str) -> Iterator[dict[str, Any]]:
    """The records of a witness file (or of a collector answering GET with the same lines). A
    line cut by a crash mid-write (the last one) is skipped."""
    if source.startswith(("http://", "https://")):
        import httpx

        text = httpx.get(source, timeout=30).text
    else:
        text = Path(source).expanduser().read_text(encoding="utf-8")
    lines = text.splitlines()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            if n == len(lines):
                continue
            raise ValueError(f"witness line {n} is not JSON") from None
        if isinstance(record, dict):
            yield record

"""The HTTP/1.1 connection: uvicorn's httptools protocol with bounded request heads.

httptools accepts a request line and headers of any size, and buffers a header value whole
(re-copying it as every chunk arrives) before the application sees the request: a 50 MiB
`X-API-Key` took seconds of CPU and kept hundreds of MiB, all before authentication. So the
head is counted here, as bytes arrive, before the parser keeps them:

- the request head (request line and headers) is at most `MAX_HEAD_BYTES`; past that, 431
  (414 while the request line has not ended yet);
- the request target is at most `MAX_URL_BYTES` (414);
- one header line is at most `MAX_HEADER_LINE_BYTES`, and there are at most `MAX_HEADERS` (431).

The refusal is a JSON error like every other one, sent with `Connection: close`; the rest of
the request is then read and thrown away (not kept) for a bounded time, so a client that writes
its whole request before reading still reads the answer instead of a reset; then the
connection closes.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = [
    "MAX_HEADERS",
    "MAX_HEADER_LINE_BYTES",
    "MAX_HEAD_BYTES",
    "MAX_URL_BYTES",
    "BoundedHttpToolsProtocol",
]

MAX_URL_BYTES = 8 * 1024
MAX_HEADER_LINE_BYTES = 8 * 1024
MAX_HEAD_BYTES = 32 * 1024
MAX_HEADERS = 100
# After a refusal, what is still sent is discarded up to this many bytes and seconds.
DISCARD_BYTES = 64 * 1024 * 1024
DISCARD_SECONDS = 5.0

_REASONS = {414: b"URI Too Long", 431: b"Request Header Fields Too Large"}


class _Refused(Exception):
    """Raised from a parser callback; httptools wraps it in an `HttpParserCallbackError`."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_bytes = 0
        self._line_ended = False
        self._line_bytes = 0
        self._tail = b""
        self._header_count = 0
        self._refusal: tuple[int, str, str] | None = None
        self._discarding = False
        self._discarded = 0
        self._discard_timer: asyncio.TimerHandle | None = None

    # -- byte counting, before the parser buffers anything -----------------------------------
    def data_received(self, data: bytes) -> None:
        if self._discarding:
            self._discarded += len(data)
            if self._discarded > DISCARD_BYTES:
                self._close()
            return
        if self._in_head:
            # The blank line that ends the head may straddle two reads.
            seen = self._tail + data
            end = seen.find(b"\r\n\r\n")
            counted = len(data) if end < 0 else max(0, end + 4 - len(self._tail))
            self._tail = seen[-3:]
            if not self._line_ended:
                line_end = data.find(b"\n", 0, counted)
                self._line_bytes += counted if line_end < 0 else line_end + 1
                self._line_ended = line_end >= 0
            self._head_bytes += counted
            if self._head_bytes > MAX_HEAD_BYTES:
                if self._line_bytes > MAX_URL_BYTES:
                    message = f"the request line is longer than {MAX_URL_BYTES} bytes"
                    self._refuse(414, "uri_too_long", message)
                else:
                    self._refuse(
                        431,
                        "headers_too_large",
                        f"the request headers are larger than {MAX_HEAD_BYTES} bytes",
                    )
                return
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        except httptools.HttpParserError:
            if self._refusal is not None:
                self._refuse(*self._refusal)
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)

    # -- parser callbacks --------------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_count = 0

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > MAX_URL_BYTES:
            self._refusal = (414, "uri_too_long", f"the request target is longer than {MAX_URL_BYTES} bytes")
            raise _Refused

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > MAX_HEADERS:
            self._refusal = (431, "too_many_headers", f"a request may carry at most {MAX_HEADERS} headers")
            raise _Refused
        if len(name) + len(value) > MAX_HEADER_LINE_BYTES:
            self._refusal = (
                431,
                "header_too_large",
                f"a header line may have at most {MAX_HEADER_LINE_BYTES} bytes",
            )
            raise _Refused
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        # The next request on this connection starts its head (pipelined bytes of it that
        # arrived in the same chunk are not counted: at most one read's worth).
        self._in_head = True
        self._head_bytes = 0
        self._line_ended = False
        self._line_bytes = 0
        self._tail = b""

    # -- the refusal -------------------------------------------------------------------------
    def _refuse(self, status: int, code: str, message: str) -> None:
        body = orjson.dumps({"error": {"code": code, "message": message, "details": {}}})
        head = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status])]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
        ]
        self.logger.warning("request refused before the application: %d %s", status, code)
        # Nothing parsed so far is kept: the parser and the headers go with the connection.
        self.headers = []
        self.url = b""
        self._discarding = True
        self.transport.write(b"".join(head) + body)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._discard_timer = self.loop.call_later(DISCARD_SECONDS, self._close)

    def _close(self) -> None:
        if self._discard_timer is not None:
            self._discard_timer.cancel()
            self._discard_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def eof_received(self) -> None:
        if self._discarding:
            self._close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._discard_timer is not None:
            self._discard_timer.cancel()
            self._discard_timer = None
        super().connection_lost(exc)

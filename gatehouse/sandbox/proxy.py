"""The egress proxy of a sandbox with `network: egress`: an HTTP proxy on a unix socket, bound
into the sandbox (whose network namespace has no other way out), that lets through only the
destinations of the adapter's `egress` list.

It understands the two forms a client sends a proxy: `CONNECT host:port` (HTTPS: checked as
`https://host:port`, then the bytes are relayed untouched, TLS end to end) and an absolute-form
request (`GET http://host:port/path`: checked as `http://...`, sent on in origin form with
`Connection: close`, so a kept-alive connection cannot turn to another host). The host is
resolved once and the checked address is the one connected to (`broker.egress`: loopback,
private and metadata addresses only when an entry names them). A refusal answers
`403 Forbidden` with the reason, is counted and reported (`on_denied`), and nothing leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from gatehouse.broker.egress import EgressDenied, EgressEntry, check_addresses, destination, match_destination
from gatehouse.broker.transport import Resolver, SystemResolver

__all__ = ["EgressProxy"]

log = logging.getLogger("gatehouse.sandbox")

_MAX_HEAD = 16 * 1024
_HEAD_SECONDS = 10.0
_CONNECT_SECONDS = 10.0
_HOP_HEADERS = {b"connection", b"proxy-connection", b"keep-alive", b"proxy-authorization", b"te", b"upgrade"}


class EgressProxy:
    def __init__(
        self,
        adapter: str,
        entries: Sequence[EgressEntry],
        socket_path: Path,
        *,
        resolver: Resolver | None = None,
        on_denied: Callable[[str, EgressDenied], None] | None = None,
    ) -> None:
        self.adapter = adapter
        self.entries = tuple(entries)
        self.path = socket_path
        self.resolver = resolver or SystemResolver()
        self.on_denied = on_denied
        self.denied = 0
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(OSError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._handle(reader, writer)
        except Exception as exc:  # a broken client: its connection ends, nothing else does
            log.debug("egress proxy %s: %s", self.adapter, exc)
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _HEAD_SECONDS)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            return
        if len(head) > _MAX_HEAD:
            return
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3:
            await _answer(writer, 400, "a proxy request line is METHOD TARGET VERSION")
            return
        method, target, version = (p.decode("latin-1") for p in parts)
        try:
            if method.upper() == "CONNECT":
                host, _, port = target.rpartition(":")
                dest = destination("https", host, int(port) if port.isdigit() else None)
            else:
                url = urlsplit(target)
                if url.scheme.lower() != "http":
                    raise EgressDenied(f"`{target[:64]}` is not an absolute http URL", reason="bad_url")
                dest = destination("http", url.hostname or "", url.port)
            match_destination(dest, self.entries)
            found = [dest.host] if dest.ip is not None else await self.resolver.resolve(dest.host)
            address = check_addresses(dest, found, self.entries)
        except EgressDenied as exc:
            self.denied += 1
            log.warning("sandbox of %s: egress denied: %s", self.adapter, exc.message)
            if self.on_denied is not None:
                self.on_denied(self.adapter, exc)
            await _answer(writer, 403, f"gatehouse: egress denied: {exc.message}")
            return
        except Exception as exc:  # an unresolvable name
            await _answer(writer, 502, f"gatehouse: {str(exc)[:200]}")
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(address, dest.port), _CONNECT_SECONDS
            )
        except (OSError, TimeoutError) as exc:
            await _answer(writer, 502, f"gatehouse: cannot connect to {dest.authority}: {exc}")
            return
        if method.upper() == "CONNECT":
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
        else:
            url = urlsplit(target)
            path = (url.path or "/") + (f"?{url.query}" if url.query else "")
            kept = [h for h in lines[1:] if h and h.split(b":", 1)[0].strip().lower() not in _HOP_HEADERS]
            up_writer.write(
                f"{method} {path} {version}\r\n".encode("latin-1")
                + b"".join(h + b"\r\n" for h in kept)
                + b"Connection: close\r\n\r\n"
            )
        await asyncio.gather(_relay(reader, up_writer), _relay(up_reader, writer))


async def _relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(Exception):
            if writer.can_write_eof():
                writer.write_eof()
            else:
                writer.close()


async def _answer(writer: asyncio.StreamWriter, status: int, text: str) -> None:
    reason = {400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway"}[status]
    body = (text + "\n").encode()
    writer.write(
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
        f"Connection: close\r\n\r\n".encode()
        + body
    )
    await writer.drain()

"""A loopback HTTP/1.1 server for the broker tests that counts its connections.

Raw asyncio, one request per connection (`Connection: close`), so `connections` is exactly how
many times anything reached it. Routes: `/ok`, `/headers` (the request head back as JSON),
`/redirect?to=URL`, `/chain/N` (N redirects, then 200), `/big?mib=N&declared=0|1`,
`/slow?seconds=S`.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

MiB = 1024 * 1024


@dataclass
class Upstream:
    host: str = "127.0.0.1"
    port: int = 0
    connections: int = 0
    requests: list[dict[str, object]] = field(default_factory=list)
    bytes_sent: int = 0
    _server: asyncio.Server | None = None

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> Upstream:
        self._server = await asyncio.start_server(self._handle, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            line, *lines = head.decode("latin-1").split("\r\n")
            method, target, _ = line.split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in lines if ":" in h)}
            length = int(headers.get("content-length", "0") or 0)
            body = await reader.readexactly(length) if length else b""
            self.requests.append({"method": method, "target": target, "headers": headers, "body": body})
            await self._answer(writer, method, target, headers)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _send(
        self, writer: asyncio.StreamWriter, status: str, headers: dict[str, str], body: bytes
    ) -> None:
        head = f"HTTP/1.1 {status}\r\nConnection: close\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        writer.write(head.encode() + b"\r\n" + body)
        await writer.drain()

    async def _answer(
        self, writer: asyncio.StreamWriter, method: str, target: str, headers: dict[str, str]
    ) -> None:
        url = urlsplit(target)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/ok":
            await self._send(writer, "200 OK", {"Content-Length": "2"}, b"ok")
        elif url.path == "/headers":
            body = json.dumps({"method": method, "headers": headers}).encode()
            await self._send(writer, "200 OK", {"Content-Length": str(len(body))}, body)
        elif url.path == "/redirect":
            await self._send(writer, "302 Found", {"Location": q["to"], "Content-Length": "0"}, b"")
        elif url.path.startswith("/chain/"):
            n = int(url.path.rsplit("/", 1)[1])
            if n == 0:
                await self._send(writer, "200 OK", {"Content-Length": "4"}, b"done")
            else:
                await self._send(
                    writer,
                    "307 Temporary Redirect",
                    {"Location": f"/chain/{n - 1}", "Content-Length": "0"},
                    b"",
                )
        elif url.path == "/big":
            size = int(q.get("mib", "50")) * MiB
            declared = q.get("declared", "0") == "1"
            head = {"Content-Length": str(size)} if declared else {}
            await self._send(writer, "200 OK", head, b"")
            chunk = b"x" * (256 * 1024)
            try:
                while self.bytes_sent < size:
                    writer.write(chunk)
                    self.bytes_sent += len(chunk)
                    await writer.drain()
            except ConnectionError:
                pass
        elif url.path == "/slow":
            await asyncio.sleep(float(q.get("seconds", "5")))
            await self._send(writer, "200 OK", {"Content-Length": "4"}, b"slow")
        else:
            await self._send(writer, "404 Not Found", {"Content-Length": "0"}, b"")

"""A body over the limit answers 413 and is read to its end (up to a bound) first, so a client
that writes its whole body before reading still reads the 413 instead of a connection reset."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

from harness import ADMIN_KEY, Server

LIMIT = 1024 * 1024  # the default --max-body-bytes
# Well past what loopback socket buffers absorb (a few MiB): without the drain, the server closes
# a socket holding unread data, the client's write meets a RST and it never reads the answer.
OVER = 9 * 1024 * 1024


def _read_response(sock: socket.socket) -> tuple[bytes, dict[str, object]]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head.split(b"\r\n", 1)[0], json.loads(body[:length])


def test_urllib_writing_a_body_far_over_the_limit_reads_the_413(server: Server) -> None:
    body = b'{"topic": "job.demo.echo", "prompt": "' + b"a" * (LIMIT + OVER) + b'"}'
    request = urllib.request.Request(
        server.url + "/api/v1/identities", data=body, headers={"X-API-Key": ADMIN_KEY}
    )
    try:
        urllib.request.urlopen(request, timeout=30)
    except urllib.error.HTTPError as exc:
        assert exc.code == 413
        assert json.loads(exc.read())["error"]["code"] == "payload_too_large"
    else:
        raise AssertionError("an oversized body was accepted")


def test_a_chunked_body_far_over_the_limit_from_a_plain_socket_reads_the_413(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(
            b"POST /api/v1/jobs HTTP/1.1\r\nHost: gatehouse\r\n"
            + f"X-API-Key: {ADMIN_KEY}\r\n".encode()
            # As urllib does: the server then closes the connection once it has answered.
            + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        chunk = b"a" * 65536
        for _ in range((LIMIT + OVER) // len(chunk)):
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        sock.sendall(b"0\r\n\r\n")
        status, body = _read_response(sock)
    assert status.startswith(b"HTTP/1.1 413"), status
    assert body["error"]["code"] == "payload_too_large"  # type: ignore[index]


def test_a_client_that_expects_100_continue_gets_the_413_without_sending_its_body(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=3) as sock:
        sock.sendall(
            b"POST /api/v1/jobs HTTP/1.1\r\nHost: gatehouse\r\n"
            + f"X-API-Key: {ADMIN_KEY}\r\nContent-Length: {LIMIT + OVER}\r\n".encode()
            + b"Expect: 100-continue\r\n\r\n"
        )
        # No "100 Continue": the server is not waiting to read (and discard) a body.
        status, body = _read_response(sock)
    assert status.startswith(b"HTTP/1.1 413"), status
    assert body["error"]["code"] == "payload_too_large"  # type: ignore[index]

"""The witness forms: a file opened O_APPEND, and a collector the records are POSTed to."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

from gatehouse.audit.witness import FileWitness, HttpWitness, open_witness, read_witness


def test_a_file_witness_appends_lines_and_reads_them_back(tmp_path: Path) -> None:
    path = tmp_path / "w" / "audit.jsonl"
    w = FileWitness(path)
    w.append([{"record": "head", "stream": "system", "seq": 1, "hash": "a"}])
    other = FileWitness(path)  # a second writer lands at the end too (O_APPEND)
    other.append([{"record": "head", "stream": "system", "seq": 2, "hash": "b"}])
    w.append([{"record": "head", "stream": "system", "seq": 3, "hash": "c"}])
    w.close()
    other.close()
    assert [r["seq"] for r in read_witness(str(path))] == [1, 2, 3]
    assert path.stat().st_mode & 0o777 == 0o600
    with path.open("a") as f:
        f.write('{"record": "head", "str')  # a line cut by a crash mid-write is skipped
    assert [r["seq"] for r in read_witness(str(path))] == [1, 2, 3]
    assert isinstance(open_witness(str(path)), FileWitness)


def test_an_http_witness_posts_batches_and_retries_a_collector_that_was_down() -> None:
    got: list[bytes] = []
    fail = {"left": 1}

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if fail["left"]:
                fail["left"] -= 1
                self.send_response(503)
            else:
                got.append(body)
                self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        w = open_witness(f"http://127.0.0.1:{server.server_port}/witness")
        assert isinstance(w, HttpWitness)
        w.append([{"record": "head", "stream": "system", "seq": 1, "hash": "a"}])
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
        w.close()
    finally:
        server.shutdown()
    assert b'"seq":1' in b"".join(got) and fail["left"] == 0

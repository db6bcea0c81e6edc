"""Real PostgreSQL and nats-server processes for the tests, on free loopback ports.

Each is started once per test session, on first use (`postgres()`, `nats()`), in a temporary
folder, and stopped by the session fixture in `conftest.py` (`stop_all`). PostgreSQL refuses to
run as root: as root, its folder is given to the unprivileged `nobody` and the server runs as that user.
Where the binaries are missing the tests that need them are skipped, unless
`GATEHOUSE_REQUIRE_SERVICES=1` (as `.ci/run` sets) makes that a failure.
"""

from __future__ import annotations

import asyncio
import glob
import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from harness import free_port

__all__ = ["NatsServer", "PostgresServer", "nats", "postgres", "stop_all"]

_RUN_AS = "nobody"


def _missing(what: str) -> None:
    message = f"{what} is not installed (apt-get install postgresql nats-server)"
    if os.environ.get("GATEHOUSE_REQUIRE_SERVICES") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited early:\n{log.read_text(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"did not listen on {port}:\n{log.read_text(errors='replace')}")


@dataclass
class PostgresServer:
    folder: Path
    port: int
    bin: Path
    proc: subprocess.Popen[bytes] | None = None
    settings: tuple[str, ...] = ()  # extra `-c name=value` server settings

    @property
    def admin_url(self) -> str:
        return f"postgresql://gatehouse@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://gatehouse@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        name = f"t{next(_databases)}_{os.getpid()}"
        _run_async(self._create(name))
        return self.url(name)

    async def _create(self, name: str) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # "fast" shutdown: open connections are closed
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)

    def kill(self) -> None:
        """Stop the server at once (a crash, for fault tests); `restart` brings it back. SIGQUIT
        is PostgreSQL's immediate shutdown: the postmaster kills every backend (a SIGKILL would
        leave the open connections served by orphaned backends)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGQUIT)
        self.proc.wait(10)

    def restart(self) -> None:
        self._spawn()

    @staticmethod
    def start_new(*settings: str) -> PostgresServer:
        """A server apart from the session's (for a test that stops it, or a benchmark that
        needs `settings` such as `shared_preload_libraries=pg_stat_statements`); `stop` it after."""
        return _start_postgres(settings)

    def _spawn(self) -> None:
        log = self.folder / "postgres.log"
        args = [
            str(self.bin / "postgres"),
            "-D", str(self.folder / "data"),
            "-h", "127.0.0.1",
            "-p", str(self.port),
            "-k", str(self.folder),
            "-c", "fsync=off",
            "-c", "full_page_writes=off",
            "-c", "max_connections=300",
            *(arg for setting in self.settings for arg in ("-c", setting)),
        ]  # fmt: skip
        out = open(log, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, cwd=self.folder, **_as_user()
        )  # type: ignore[call-overload]
        _wait_port(self.port, self.proc, log)
        # Accepting TCP is not accepting logins (startup recovery): wait for a query to answer.
        deadline = time.monotonic() + 20
        while True:
            try:
                _run_async(_ping(self.admin_url))
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


async def _ping(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url, timeout=2)
    await conn.close()


_databases = itertools.count(1)


def _run_async(coro: object) -> None:
    """Run a coroutine to completion from sync code, even inside a running event loop."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(coro)  # type: ignore[arg-type]
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if errors:
        raise errors[0]


def _as_user() -> dict[str, object]:
    """Popen arguments that drop root (the process itself runs as the user, so signals sent to
    it reach PostgreSQL, not a wrapper)."""
    if os.geteuid() != 0:
        return {}
    import pwd

    entry = pwd.getpwnam(_RUN_AS)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _start_postgres(settings: tuple[str, ...] = ()) -> PostgresServer:
    bin_dir = _postgres_bin()
    if bin_dir is None:
        _missing("PostgreSQL")
        raise AssertionError("unreachable")
    folder = Path(tempfile.mkdtemp(prefix="gatehouse-pg-"))
    folder.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(folder, _RUN_AS)
    subprocess.run(
        [str(bin_dir / "initdb"), "-D", str(folder / "data"), "-U", "gatehouse", "-A", "trust",
         "--no-locale", "-E", "UTF8", "--no-sync"],
        check=True, capture_output=True, cwd=folder, **_as_user(),  # type: ignore[call-overload]
    )  # fmt: skip
    server = PostgresServer(folder=folder, port=free_port(), bin=bin_dir, settings=settings)
    server._spawn()
    return server


@dataclass
class NatsServer:
    folder: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> NatsServer:
        log = self.folder / "nats.log"
        args = ["nats-server", "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.folder / "js")]
        out = open(log, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        _wait_port(self.port, self.proc, log)
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


_lock = threading.Lock()
_postgres: PostgresServer | None = None
_nats: NatsServer | None = None


def postgres() -> PostgresServer:
    """The session's PostgreSQL server (started on first use)."""
    global _postgres
    with _lock:
        if _postgres is None:
            _postgres = _start_postgres()
        return _postgres


def nats() -> NatsServer:
    """The session's nats-server with JetStream (started on first use)."""
    global _nats
    with _lock:
        if _nats is None:
            if shutil.which("nats-server") is None:
                _missing("nats-server")
            _nats = NatsServer(
                folder=Path(tempfile.mkdtemp(prefix="gatehouse-nats-")), port=free_port()
            ).start()
        return _nats


def stop_all() -> None:
    global _postgres, _nats
    with _lock:
        for server in (_postgres, _nats):
            if server is not None:
                server.stop()
        _postgres = _nats = None

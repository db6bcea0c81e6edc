"""Runs first inside the sandbox (`python -I -S /run/gatehouse/init.py OPTIONS -- COMMAND...`):
sets the resource limits, starts the egress forwarder when asked, and executes the command.

Standard library only, and read by path: nothing of Gatehouse is importable inside.

The limits are set here, inside the sandbox's own user and PID namespaces, rather than on the
supervisor outside: `RLIMIT_NPROC` counts the processes of a user in a namespace, so set here it
bounds the sandbox's processes, while set outside it would count every process Gatehouse's user
runs. `RLIMIT_AS` bounds the address space of each process (an allocation past it fails),
`RLIMIT_CPU` its processor time (SIGXCPU, then SIGKILL a second later), `RLIMIT_NOFILE` its open
files; no core files.

`--forward=PORT:SOCKET`: a child process accepts TCP connections on 127.0.0.1:PORT (the
sandbox's own loopback: its network namespace has nothing else) and joins each to the unix
socket of Gatehouse's egress proxy, the only way out. `HTTP_PROXY` points at it.
"""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import sys
import threading


def _pipe(a: socket.socket, b: socket.socket) -> None:
    try:
        while data := a.recv(65536):
            b.sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def _listen(port: int) -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    return listener


def _forward(listener: socket.socket, path: str) -> None:
    while True:
        client, _ = listener.accept()
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(path)
        except OSError:
            client.close()
            upstream.close()
            continue
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def main(argv: list[str]) -> None:
    if "--" not in argv:
        sys.exit("usage: init.py [--memory=N] [--cpu=N] [--nofile=N] [--nproc=N] [--forward=P:S] -- CMD")
    split = argv.index("--")
    options = dict(a[2:].split("=", 1) for a in argv[:split] if a.startswith("--") and "=" in a)
    command = argv[split + 1 :]
    forward = options.get("forward")
    if forward:
        port, path = forward.split(":", 1)
        ready_r, ready_w = os.pipe()
        if os.fork() == 0:
            os.close(ready_r)
            listener = _listen(int(port))  # listening before the command starts
            os.write(ready_w, b"1")
            os.close(ready_w)
            _forward(listener, path)
            os._exit(0)
        os.close(ready_w)
        os.read(ready_r, 1)
        os.close(ready_r)
    limits = {
        "memory": resource.RLIMIT_AS,
        "nofile": resource.RLIMIT_NOFILE,
        "nproc": resource.RLIMIT_NPROC,
    }
    for name, which in limits.items():
        if name in options:
            n = int(options[name])
            resource.setrlimit(which, (n, n))
    if "cpu" in options:
        n = int(options["cpu"])
        resource.setrlimit(resource.RLIMIT_CPU, (n, n + 1))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    try:
        os.execv(command[0], command)
    except OSError as exc:
        sys.exit(f"gatehouse sandbox: cannot start `{command[0]}`: {exc}")


if __name__ == "__main__":
    main(sys.argv[1:])

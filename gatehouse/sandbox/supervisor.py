"""`python -I supervisor.py BWRAP-ARGV...`: start a sandbox and watch it until it ends.

Standard library only, run by path (like `gatehouse.mcp.launch`, which it replaces for a
sandboxed adapter). Gatehouse starts it with the environment it means the command to have
(the names in `GATEHOUSE_MCP_ENV`) and its bounds in `GATEHOUSE_SANDBOX` (JSON: `processes`,
`wall_seconds`, `events`; `seccomp` and `seccomp_fd`: the compiled seccomp filter, opened on
that descriptor for bubblewrap); the supervisor executes bubblewrap as its child with the first
only, passes stdin and stdout straight through (the MCP stream never touches it), and relays
stderr, keeping its tail to say why a sandbox could not be set up.

Every 50 ms it counts the tasks (processes and threads) in the sandbox's process tree: past
`processes` (plus bubblewrap's own two), or past `wall_seconds` of life, it kills the whole tree
(SIGKILL to every task, and to bubblewrap, whose init dies with it and takes the PID namespace
down). `RLIMIT_NPROC` inside already stops a fork bomb of an unprivileged Gatehouse; this count
is what stops it when Gatehouse runs as root, which the kernel exempts from that limit. What
happened is appended to the `events` file as one JSON line (`killed` with `reason`
`processes`, `wall_seconds`, `cpu_seconds`, `signal`; `setup_failed` with bubblewrap's message),
which Gatehouse audits; the supervisor then exits with the sandbox's status.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sys
import time

ENV_NAMES = "GATEHOUSE_MCP_ENV"
CONFIG = "GATEHOUSE_SANDBOX"
_POLL = 0.05
_OWN_TASKS = 2  # bubblewrap outside, and its init inside the PID namespace


def _tree(root: int) -> list[int]:
    """Every process under `root` (itself included), following /proc's children lists."""
    seen, todo = [], [root]
    while todo:
        pid = todo.pop()
        seen.append(pid)
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    todo += [int(c) for c in f.read().split()]
            except (OSError, ValueError):
                continue
    return seen


def _tasks(pids: list[int]) -> int:
    n = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            n += len(os.listdir(f"/proc/{pid}/task"))
    return n


def _kill(root: int) -> None:
    # Repeated: a fork bomb makes children while we kill their parents.
    for _ in range(20):
        pids = _tree(root)
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        if len(pids) <= 1:
            return
        time.sleep(0.005)


def _event(path: str | None, record: dict[str, object]) -> None:
    if not path:
        return
    record = {"at": time.time(), "pid": os.getpid(), **record}
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit("usage: python -I supervisor.py BWRAP [OPTIONS...] -- COMMAND...")
    config = json.loads(os.environ.get(CONFIG, "{}"))
    names = [n for n in os.environ.get(ENV_NAMES, "").split(",") if n]
    env = {n: os.environ[n] for n in names if n in os.environ}
    limit = int(config.get("processes", 64)) + _OWN_TASKS
    wall = float(config.get("wall_seconds", 300))
    events = config.get("events")
    err_r, err_w = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(err_r)
        os.dup2(err_w, 2)
        os.close(err_w)
        try:
            if config.get("seccomp"):
                # bubblewrap reads the compiled filter from this descriptor (`--seccomp FD`).
                fd = os.open(config["seccomp"], os.O_RDONLY)
                if fd != config["seccomp_fd"]:
                    os.dup2(fd, config["seccomp_fd"])  # inheritable
                    os.close(fd)
                else:
                    os.set_inheritable(fd, True)
            os.execvpe(argv[0], argv, env)
        except OSError as exc:
            os.write(2, f"gatehouse sandbox: cannot run `{argv[0]}`: {exc}\n".encode())
            os._exit(127)
    os.close(err_w)
    # The MCP stream is the sandbox's alone: hold no end of it, so its EOF is seen at once.
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)

    # Gatehouse ends the sandbox by ending us: a SIGTERM takes the tree down with us.
    def _stop(*_: object) -> None:
        _kill(child)
        os._exit(143)

    signal.signal(signal.SIGTERM, _stop)
    started = time.monotonic()
    tail = b""
    reason: str | None = None
    seen = 0
    status = 0
    open_err = True
    while True:
        if open_err:
            ready, _, _ = select.select([err_r], [], [], _POLL)
            if ready:
                chunk = os.read(err_r, 65536)
                if chunk:
                    os.write(2, chunk)
                    tail = (tail + chunk)[-4096:]
                else:
                    open_err = False
        else:
            time.sleep(_POLL)
        done, status = os.waitpid(child, os.WNOHANG)
        if done:
            break
        seen = _tasks(_tree(child))
        if seen > limit:
            reason = "processes"
        elif time.monotonic() - started > wall:
            reason = "wall_seconds"
        if reason is not None:
            _kill(child)
            _, status = os.waitpid(child, 0)
            break
    code = os.waitstatus_to_exitcode(status)
    if reason == "processes":
        _event(
            events,
            {"event": "killed", "reason": reason, "limit": limit - _OWN_TASKS, "seen": seen - _OWN_TASKS},
        )
    elif reason == "wall_seconds":
        _event(events, {"event": "killed", "reason": reason, "limit": wall})
    elif code in (128 + signal.SIGXCPU, -signal.SIGXCPU):
        _event(events, {"event": "killed", "reason": "cpu_seconds"})
    elif code > 128 or code < 0:
        _event(
            events, {"event": "killed", "reason": "signal", "signal": abs(code) - (128 if code > 0 else 0)}
        )
    else:
        text = tail.decode("utf-8", "replace")
        if code != 0 and "bwrap:" in text:
            line = next(line for line in text.splitlines() if "bwrap:" in line)
            _event(events, {"event": "setup_failed", "message": line.strip()[:500]})
    sys.exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":
    main(sys.argv[1:])

"""How to run one command in a bubblewrap sandbox: `plan(command, spec, ...)` -> `Plan`.

Theory of operation. The sandbox starts from an empty root and makes visible only what a
program needs to run: the system's `/usr` (and the `/bin`, `/lib*` links or directories beside
it), a few files of `/etc` that the dynamic loader, name lookups and TLS read, the Python
installation the command runs on (found from the command itself: a virtual environment's
directory and the installation its `pyvenv.cfg` names, or the interpreter's prefix), a file the
command names in its arguments (`server.py`), and what the adapter declares (`read`: read-only,
`write`: read-write). Everything else of the host — Gatehouse's data directory and keys above
all — does not exist inside. `/tmp` is a private tmpfs, `/proc` shows only the sandbox's own
processes (own PID namespace), `/dev` is bubblewrap's minimal one. The process has its own PID,
IPC, UTS, cgroup and network namespaces (no interface but a loopback that leads nowhere), no
capability, `no_new_privs`, a seccomp filter denying dangerous system calls (`seccomp.py`), its
own session, and dies with its supervisor.

A path that is, contains or lies inside a forbidden one (the data directory, the keys) is
refused here, before anything starts (`SandboxError`), whether the adapter declared it or it was
found. Inside, `init.py` (bound read-only at `/run/gatehouse/init.py`) sets the resource limits
and, for `network: egress`, starts the forwarder to Gatehouse's egress proxy, then executes the
command; `supervisor.py` outside enforces the process count and the wall-clock bound.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gatehouse.errors import GatehouseError
from gatehouse.policy.catalog import Sandbox

__all__ = ["INIT", "SECCOMP_FD", "Plan", "SandboxError", "plan"]

HERE = Path(__file__).resolve().parent
INIT = HERE / "init.py"
_INSIDE_INIT = "/run/gatehouse/init.py"
_INSIDE_PROXY = "/run/gatehouse/egress.sock"
_PROXY_PORT = 3128
# Files of /etc a program may read to start, resolve names and verify TLS; nothing else of /etc.
_ETC = (
    "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime", "nsswitch.conf",
    "passwd", "group", "hosts", "host.conf", "resolv.conf", "ssl", "ca-certificates",
    "ca-certificates.conf", "pki", "mime.types", "gitconfig",
)  # fmt: skip
_SYSTEM = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_NOFILE = 1024
SECCOMP_FD = 9  # where the supervisor opens the seccomp filter for bubblewrap


class SandboxError(GatehouseError):
    """The sandbox cannot be set up for this adapter on this machine (it does not start)."""

    code = "sandbox_unavailable"


@dataclass(frozen=True, slots=True)
class Plan:
    """What the supervisor executes (`argv`: bwrap, its options, the in-sandbox init, the
    command), the environment given to the command inside, and the supervisor's own bounds."""

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    processes: int = 64
    wall_seconds: int = 300
    visible: tuple[str, ...] = ()  # host paths bound inside (for diagnostics and tests)
    # The seccomp filter (`seccomp.py`): its compiled file on the host, and the descriptor
    # bubblewrap reads it from (`--seccomp FD`), which the supervisor opens it on.
    seccomp: str | None = None
    seccomp_fd: int | None = None

    def supervisor_config(self, events: str | None) -> str:
        return json.dumps({"processes": self.processes, "wall_seconds": self.wall_seconds, "events": events,
                           "seccomp": self.seccomp, "seccomp_fd": self.seccomp_fd})  # fmt: skip


def _inside(path: Path, other: Path) -> bool:
    return path == other or other in path.parents


def _check(path: Path, forbidden: Sequence[Path], what: str) -> None:
    for bad in forbidden:
        if _inside(path, bad) or _inside(bad, path):
            raise SandboxError(
                f"{what} `{path}` would show Gatehouse's data directory or keys (`{bad}`) in the sandbox"
            )


def _venv_of(path: Path) -> Path | None:
    for parent in list(path.parents)[:3]:
        if (parent / "pyvenv.cfg").is_file():
            return parent
    return None


def _python_roots(exe: Path) -> list[Path]:
    """Directories a Python program at `exe` (an interpreter, or a script with a shebang)
    needs: its virtual environment, and the installation under it."""
    candidates = [exe]
    try:
        with exe.open("rb") as f:
            head = f.readline(512)
    except OSError:
        head = b""
    if head.startswith(b"#!"):
        words = head[2:].decode("utf-8", "replace").split()
        if words:
            interp = words[1] if Path(words[0]).name == "env" and len(words) > 1 else words[0]
            found = interp if interp.startswith("/") else shutil.which(interp)
            if found:
                candidates.append(Path(found))
    roots: list[Path] = []
    for c in candidates:
        for p in (c.absolute(), c.resolve()):
            venv = _venv_of(p)
            if venv is not None:
                roots.append(venv)
                for line in (venv / "pyvenv.cfg").read_text(errors="replace").splitlines():
                    key, _, value = line.partition("=")
                    if key.strip() == "home" and value.strip():
                        roots.append(Path(value.strip()).resolve().parent)
            elif p.name.startswith("python") and p.parent.name == "bin":
                roots.append(p.parent.parent)
    return [r for r in roots if not _inside(r, Path("/usr")) and r != Path("/")]


def _which(command: str, cwd: Path, path: str) -> Path:
    if "/" in command:
        found = cwd / command
        if not found.is_file():
            raise SandboxError(f"command `{command}` does not exist")
        return found.absolute()
    which = shutil.which(command, path=path)
    if which is None:
        raise SandboxError(f"command `{command}` is not on PATH")
    return Path(which).absolute()


def plan(
    command: Sequence[str],
    spec: Sandbox,
    *,
    forbidden: Sequence[Path],
    bwrap: str = "bwrap",
    cwd: Path | None = None,
    path: str | None = None,
    proxy_socket: Path | None = None,
    seccomp: Path | None = None,
    seccomp_fd: int = SECCOMP_FD,
) -> Plan:
    """The sandboxed launch of `command` under `spec`; `SandboxError` when it cannot be set up
    (a declared path missing, or one that would show a `forbidden` path). With `seccomp` (a
    compiled filter), bubblewrap installs it from descriptor `seccomp_fd`, which whoever runs
    the plan opens it on (the supervisor does, from its config)."""
    if not command:
        raise SandboxError("an empty command cannot be sandboxed")
    cwd = cwd or Path.cwd()
    path = path if path is not None else os.environ.get("PATH", os.defpath)
    forbidden = [Path(os.path.realpath(f)) for f in forbidden]
    exe = _which(command[0], cwd, path)
    ro: dict[Path, str] = {}  # host path -> what it is (for the error message)
    rw: dict[Path, str] = {}
    for root in {*_python_roots(exe), *_python_roots(Path(sys.executable))}:
        ro[root] = "the Python installation"
    if not _inside(exe.resolve(), Path("/usr")):
        ro[exe] = "the command"
    for arg in command[1:]:
        candidate = cwd / arg if not arg.startswith("/") else Path(arg)
        if ("/" in arg or arg.endswith(".py")) and candidate.is_file():
            ro[candidate.absolute()] = "a file the command names"
    for declared, into in ((spec.read, ro), (spec.write, rw)):
        for p in declared:
            host = Path(p)
            if not host.exists():
                raise SandboxError(f"declared sandbox path `{p}` does not exist")
            into[host] = "declared path"
    for table in (ro, rw):
        for host, what in table.items():
            _check(host, forbidden, what)
            _check(Path(os.path.realpath(host)), forbidden, what)
    proxy = spec.network == "egress"
    if proxy and proxy_socket is None:
        raise SandboxError("`network: egress` needs Gatehouse's egress proxy, and none is running")

    argv: list[str] = [
        bwrap, "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc",
        "--unshare-uts", "--unshare-net", "--unshare-cgroup-try", "--cap-drop", "ALL",
        "--hostname", "sandbox", "--ro-bind", "/usr", "/usr",
    ]  # fmt: skip
    for d in _SYSTEM:
        if os.path.islink(d):
            argv += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            argv += ["--ro-bind", d, d]
    for name in _ETC:
        if os.path.lexists(f"/etc/{name}"):
            argv += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    argv += ["--tmpfs", "/tmp", "--proc", "/proc", "--dev", "/dev", "--dir", "/run/gatehouse"]
    argv += ["--ro-bind", str(INIT), _INSIDE_INIT]
    # Parents before children, so a declared path under another one is bound on top of it;
    # one already visible through its parent (with the same or more rights) is not bound again.
    for host in sorted({*ro, *rw}, key=lambda p: len(p.parts)):
        writable = host in rw
        covers = rw if writable else {*ro, *rw}
        if any(other != host and _inside(host, other) for other in covers):
            continue
        argv += ["--bind" if writable else "--ro-bind", str(host), str(host)]
    if proxy and proxy_socket is not None:
        argv += ["--bind", str(proxy_socket), _INSIDE_PROXY]
    visible_cwd = any(_inside(cwd, p) for p in (*ro, *rw) if p.is_dir())
    argv += ["--chdir", str(cwd) if visible_cwd else "/tmp"]
    init = [sys.executable, "-I", "-S", _INSIDE_INIT,
            f"--memory={spec.memory}", f"--cpu={spec.cpu_seconds}", f"--nofile={_NOFILE}",
            f"--nproc={spec.processes}"]  # fmt: skip
    if proxy:
        init.append(f"--forward={_PROXY_PORT}:{_INSIDE_PROXY}")
    if seccomp is not None:
        argv += ["--seccomp", str(seccomp_fd)]
    argv += ["--", *init, "--", str(exe), *command[1:]]
    env = {"HOME": "/tmp", "TMPDIR": "/tmp", "MALLOC_ARENA_MAX": "2"}
    if proxy:
        url = f"http://127.0.0.1:{_PROXY_PORT}"
        env.update({"HTTP_PROXY": url, "HTTPS_PROXY": url, "http_proxy": url, "https_proxy": url,
                    "ALL_PROXY": url, "NO_PROXY": "", "no_proxy": ""})  # fmt: skip
    return Plan(
        argv=tuple(argv),
        env=env,
        processes=spec.processes,
        wall_seconds=spec.wall_seconds,
        visible=tuple(str(p) for p in sorted({*ro, *rw})),
        seccomp=str(seccomp) if seccomp is not None else None,
        seccomp_fd=seccomp_fd if seccomp is not None else None,
    )

"""`gatehouse.sandbox.plan`: what a sandbox shows, and what it refuses to show."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from gatehouse.policy.catalog import Sandbox
from gatehouse.sandbox import SandboxError, Sandboxes, plan
from gatehouse.sandbox.seccomp import compile_to

SERVER = [sys.executable, str(Path(__file__).resolve().parent / "jailbreak_server.py")]


def test_a_declared_path_inside_or_around_the_data_directory_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "keys").mkdir(parents=True)
    for declared in (Sandbox(read=(str(tmp_path),)), Sandbox(write=(str(data / "keys"),)),
                     Sandbox(read=(str(data),))):  # fmt: skip
        with pytest.raises(SandboxError, match="data directory or keys"):
            plan(SERVER, declared, forbidden=[data])
    # Through a symbolic link too.
    (tmp_path / "innocent").symlink_to(data)
    with pytest.raises(SandboxError, match="data directory or keys"):
        plan(SERVER, Sandbox(read=(str(tmp_path / "innocent"),)), forbidden=[data])


def test_missing_paths_and_commands_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="does not exist"):
        plan(SERVER, Sandbox(read=(str(tmp_path / "nope"),)), forbidden=[])
    with pytest.raises(SandboxError, match="not on PATH"):
        plan(["no-such-server-x"], Sandbox(), forbidden=[])
    with pytest.raises(SandboxError, match="egress proxy"):
        plan(SERVER, Sandbox(network="egress"), forbidden=[])


def test_only_the_interpreter_the_server_and_declared_paths_are_bound(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    p = plan(SERVER, Sandbox(write=(str(tmp_path / "work"),)), forbidden=[tmp_path / "data"])
    argv = list(p.argv)
    assert "--unshare-net" in argv and "--unshare-pid" in argv and argv[argv.index("--cap-drop") + 1] == "ALL"
    assert ["--bind", str(tmp_path / "work"), str(tmp_path / "work")] == argv[
        argv.index(str(tmp_path / "work")) - 1 : argv.index(str(tmp_path / "work")) + 2
    ]
    assert SERVER[1] in p.visible and sys.base_prefix in p.visible
    assert not any(v == "/" or v.startswith(str(tmp_path / "data")) for v in p.visible)
    assert p.env["HOME"] == "/tmp" and "HTTP_PROXY" not in p.env
    assert f"--nproc={Sandbox().processes}" in argv and f"--memory={Sandbox().memory}" in argv


def test_the_seccomp_filter_is_installed_from_the_descriptor_the_supervisor_opens(tmp_path: Path) -> None:
    p = plan(SERVER, Sandbox(), forbidden=[], seccomp=tmp_path / "f.bpf", seccomp_fd=7)
    argv = list(p.argv)
    assert argv[argv.index("--seccomp") + 1] == "7" and argv.index("--seccomp") < argv.index("--")
    assert json.loads(p.supervisor_config(None))["seccomp"] == str(tmp_path / "f.bpf")
    assert "--seccomp" not in plan(SERVER, Sandbox(), forbidden=[]).argv


def test_the_filter_denies_what_it_says_and_compiles_to_bpf(tmp_path: Path) -> None:
    try:
        denied = compile_to(tmp_path / "f.bpf")
    except SandboxError as exc:
        pytest.skip(exc.message)
    for name in ("ptrace", "mount", "unshare", "setns", "bpf", "keyctl", "userfaultfd", "init_module"):
        assert name in denied
    size = (tmp_path / "f.bpf").stat().st_size
    assert size > 0 and size % 8 == 0  # struct sock_filter is 8 bytes


def test_without_a_seccomp_binding_sandboxes_fail_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyseccomp", None)  # `import pyseccomp` raises ImportError
    why = Sandboxes().available()
    assert why is not None and "seccomp filter cannot be compiled" in why

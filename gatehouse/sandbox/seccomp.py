"""The seccomp filter every sandbox runs under: dangerous system calls answer EPERM.

Compiled once by libseccomp (through `pyseccomp`, the only module that imports it) into the
classic-BPF program bubblewrap installs with `--seccomp FD` just before it executes the command,
so it binds the command and everything it starts, and no process inside can lift it
(`no_new_privs`; a filter can only be added to, never removed).

A deny list, not an allow list: the tools a sandbox runs (Python, Node, git, whatever an MCP
server is written in) make system calls nobody can list in advance, and an allow list that
misses one breaks a tool in ways that are hard to see. What it denies is what a confined tool
has no business calling and what kernel exploits most often go through: debugging other
processes, mounting, namespaces (a nested user namespace gives back capabilities inside it and
with them much of the kernel's attack surface), kernel modules and kexec, eBPF, perf, the key
ring, swap, reboot, setting the clock, `userfaultfd` (a staple of exploits' race windows), io_uring, and
file handles that bypass path checks. `clone` is refused only with a namespace flag; `clone3`,
whose flags seccomp cannot read (they sit in memory), answers ENOSYS, so the C library falls
back to `clone` — what container runtimes' default profiles do. System calls of another
architecture's ABI (32-bit x86 on x86-64) kill the process: they would bypass the table.

Where the filter cannot be compiled (no libseccomp, no binding) `compile_to` raises
`SandboxError`, and sandboxes fail closed as they do without bubblewrap.
"""

from __future__ import annotations

import errno
from pathlib import Path

from gatehouse.sandbox.plan import SandboxError

__all__ = ["CLONE_NAMESPACES", "DENIED", "compile_to"]

DENIED = (
    # other processes' memory
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    # mounts and the root
    "mount", "umount2", "pivot_root", "chroot", "mount_setattr", "move_mount", "open_tree",
    "fsopen", "fsconfig", "fsmount", "fspick",
    # namespaces
    "unshare", "setns",
    # the kernel itself
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "bpf",
    "perf_event_open", "reboot", "swapon", "swapoff", "acct", "quotactl", "syslog", "iopl",
    "ioperm", "lookup_dcookie", "uselib", "vhangup",
    # the key ring
    "keyctl", "add_key", "request_key",
    # exploit helpers and path-check bypasses
    "userfaultfd", "open_by_handle_at", "name_to_handle_at",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    # setting the clock (`adjtimex`/`clock_adjtime` stay: the C library reads the clock with them)
    "settimeofday", "clock_settime",
)  # fmt: skip

# CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWTIME (linux/sched.h)
CLONE_NAMESPACES = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000,
                    0x40000000, 0x00000080)  # fmt: skip


def compile_to(path: Path) -> tuple[str, ...]:
    """Write the filter's BPF program to `path` (mode 0600); the system calls it denies that
    this kernel's architecture has. `SandboxError` when it cannot be compiled here."""
    try:
        import pyseccomp as sc
    except (ImportError, RuntimeError, OSError) as exc:
        raise SandboxError(f"the seccomp filter cannot be compiled (libseccomp, pyseccomp): {exc}") from None
    try:
        f = sc.SyscallFilter(defaction=sc.ALLOW)
        eperm = sc.ERRNO(errno.EPERM)
        denied = []
        for name in DENIED:
            if sc.resolve_syscall(sc.Arch.NATIVE, name) < 0:
                continue  # not a system call of this architecture
            f.add_rule(eperm, name)
            denied.append(name)
        for flag in CLONE_NAMESPACES:
            f.add_rule(eperm, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
        if sc.resolve_syscall(sc.Arch.NATIVE, "clone3") >= 0:
            f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
        path.touch(mode=0o600)
        with path.open("wb") as out:
            f.export_bpf(out)
    except (OSError, RuntimeError, ValueError) as exc:
        raise SandboxError(f"the seccomp filter cannot be compiled: {exc}") from None
    return tuple(denied)

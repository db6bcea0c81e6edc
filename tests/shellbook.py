"""Run a documented shell block as a user types it: one command at a time, in one bash.

The README and `docs/runbook.md` print commands that a new user pastes into a terminal. These
tests take the block from the Markdown file itself (so the docs cannot drift from what is
tested), feed each command to one long-lived `bash` (so `export`, `&` and shell variables carry
over as they do for the user) and hand back what each command printed.

Ports: the blocks use the defaults (8081, 9090). Where it may (root, as in CI and on the
development machines), the shell runs in a network namespace of its own, whose loopback has
those ports free whatever else runs on the machine; nothing in the block is rewritten. Elsewhere
the ports are the one substitution made.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from harness import free_port

__all__ = ["Shell", "commands", "first_json", "sh_block"]


def sh_block(markdown: Path, heading: str) -> str:
    """The first ```sh block under the Markdown heading `heading`."""
    text = markdown.read_text()
    start = re.search(rf"^#+ {re.escape(heading)}\s*$", text, re.M)
    assert start, f"no heading `{heading}` in {markdown}"
    block = re.search(r"^```sh\n(.*?)^```", text[start.end() :], re.M | re.S)
    assert block, f"no sh block under `{heading}` in {markdown}"
    return block.group(1)


def commands(block: str) -> list[str]:
    """The block's commands: continuation lines joined, blank and comment-only lines dropped."""
    out: list[str] = []
    current = ""
    for line in block.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line + "\n"
        if not line.endswith("\\"):
            out.append(current.rstrip("\n"))
            current = ""
    assert not current, "the block ends inside a continued line"
    return out


def first_json(text: str) -> Any:
    """The first JSON object printed in `text` (curl prints no newline after it)."""
    for match in re.finditer(r"\{", text):
        try:
            value, _ = json.JSONDecoder().raw_decode(text[match.start() :])
        except ValueError:
            continue
        return value
    raise AssertionError(f"no JSON object in {text!r}")


def _netns_works() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    probe = subprocess.run(["unshare", "-n", "ip", "link", "set", "lo", "up"], capture_output=True)
    return probe.returncode == 0


class Shell:
    """One bash process; `run(command)` types a command and returns what it printed."""

    def __init__(self, cwd: Path, env: dict[str, str] | None = None) -> None:
        self.netns = _netns_works()
        self.ports = {8081: 8081, 9090: 9090} if self.netns else {8081: free_port(), 9090: free_port()}
        base = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")}
        # The `gatehouse` command of this interpreter comes first, as after `pip install -e .`.
        base["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{base.get('PATH', '')}"
        base.update(env or {})
        argv = ["bash", "--noprofile", "--norc"]
        if self.netns:
            argv = ["unshare", "-n", *argv]
        self.log = cwd / "shell-stderr.log"
        self._stderr = open(self.log, "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=base,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            bufsize=1,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self._n = 0
        if self.netns:
            self.run("ip link set lo up")

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)

    def localize(self, command: str) -> str:
        """The command as run: unchanged in a namespace, else with the free ports put in."""
        if self.netns:
            return command
        command = command.replace(":8081", f":{self.ports[8081]}").replace(":9090", f":{self.ports[9090]}")
        if re.match(r"\s*gatehouse serve\b", command):
            command = command.replace(
                "gatehouse serve",
                f"gatehouse serve --port {self.ports[8081]} --metrics-port {self.ports[9090]}",
                1,
            )
        return command

    def run(self, command: str, timeout: float = 60.0) -> tuple[int, str]:
        """Type `command`; its exit status and what it printed on stdout."""
        self._n += 1
        marker = f"__shellbook_{self._n}__"
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{self.localize(command)}\nprintf '\\n{marker} %s\\n' \"$?\"\n")
        self.proc.stdin.flush()
        out: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(
                    f"`{command}` did not finish in {timeout}s: {''.join(out)}\n{self.log.read_text()}"
                ) from None
            if line.startswith(marker):
                return int(line.split()[1]), "".join(out)
            out.append(line)

    def close(self) -> None:
        # End the jobs the block started in the background (`gatehouse serve &`), then the shell.
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write("kill $(jobs -p) 2>/dev/null; wait\nexit\n")
            self.proc.stdin.flush()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()

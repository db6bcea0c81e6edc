"""`unfold`: shell text as the shell runs it (the probe's evasions, and prose left alone)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gatehouse.ingress.shell import MAX_UNFOLD_CHARS, might_hide_commands, unfold


@pytest.mark.parametrize(
    ("text", "runs"),
    [
        ('r""m -rf /', "rm -rf /"),
        ("r''m -rf /", "rm -rf /"),
        ("\\r\\m -rf /", "rm -rf /"),
        ("rm${IFS}-rf${IFS}/", "rm -rf /"),
        ("rm$IFS-rf$IFS/", "rm -rf /"),
        ("x=rm; $x -rf /", "rm -rf /"),
        ("x=rm; ${x} -rf /", "rm -rf /"),
        ("a=$(echo rm); $a -rf /", "rm -rf /"),
        ("x=`printf rm`; $x -rf /", "rm -rf /"),
        ("$'\\x72\\x6d' -rf /", "rm -rf /"),
        ("bash -c 'rm -rf /'", "rm -rf /"),
        ('sudo sh -c "rm -rf /"', "rm -rf /"),
        ("echo cm0gLXJmIC8=|base64 -d|sh", "rm -rf /"),
        ("echo cm0gLXJmIC8= | base64 --decode | bash", "rm -rf /"),
        ("echo 726d202d7266202f | xxd -r -p | bash", "rm -rf /"),
        ("python3 -c \"import shutil; shutil.rmtree('/')\"", "import shutil; shutil.rmtree('/')"),
        ("perl -e 'unlink glob \"/etc/*\"'", 'unlink glob "/etc/*"'),
        ("echo pwned > /etc/passwd", "> /etc/passwd"),
        ('echo x >"/etc/sudoers"', "> /etc/sudoers"),
    ],
)
def test_evasions_unfold_to_the_command_a_shell_runs(text: str, runs: str) -> None:
    assert might_hide_commands(text)
    assert runs in unfold(text).splitlines(), unfold(text)


@pytest.mark.parametrize(
    "text",
    [
        "summarise the staging inventory and list the hosts that drifted",
        "please check the logs, don't delete anything",
        'the error says "disk full" on host-3',
    ],
)
def test_prose_unfolds_to_no_new_words(text: str) -> None:
    words = set(text.replace('"', " ").replace("'", " ").replace(",", " ").split())
    for line in unfold(text).splitlines():
        assert set(line.replace(",", " ").split()) <= words, line


def test_plain_words_need_no_parse() -> None:
    assert not might_hide_commands("rm -rf /tmp/build and then list the hosts")


def test_bounded_on_hostile_input() -> None:
    nested = "bash -c " + "'bash -c " * 50 + "rm -rf /" + "'" * 51
    assert len(unfold(nested)) <= MAX_UNFOLD_CHARS
    huge = "x=a; " * 100_000
    assert len(unfold(huge)) <= MAX_UNFOLD_CHARS
    assert unfold("echo !!!notbase64!!! | base64 -d | sh") is not None
    assert unfold("\ud800 rm") is not None  # a lone surrogate is not a crash


def test_deep_nesting_is_bounded_and_keeps_the_command() -> None:
    for text in ("( " * 5000 + "rm -rf /" + " )" * 5000, "( a | " * 5000 + "rm -rf /" + " )" * 5000):
        assert "rm -rf /" in unfold(text)


def test_text_in_front_cannot_swallow_a_command() -> None:
    # An unclosed quote or a lone `$` on the line before must not hide the next line's command.
    for prefix in ("$", "'", '"', "`", "$(", "cat <<EOF"):
        assert "rm -rf /" in unfold(f"{prefix}\necho cm0gLXJmIC8= | base64 -d | sh").splitlines()


_CRASHER = """
import random, sys
from gatehouse.ingress.shell import unfold
rnd = random.Random(int(sys.argv[1]))
for _ in range(20000):
    pre = "".join(rnd.choice("ab {}$'\\"\\n;") for _ in range(rnd.randint(0, 6)))
    tail = (rnd.choice(["x", " ", chr(rnd.randint(0x10000, 0x10FFFF)), chr(rnd.randint(0x80, 0xFFFF))])
            for _ in range(rnd.randint(1, 6)))
    unfold(pre + "{" + "".join(tail) + " | sh")
"""


def test_a_brace_before_an_astral_character_does_not_crash_the_process() -> None:
    # tree-sitter-bash 0.25 reads past its buffer on `{` followed by a 4-byte UTF-8 character: a
    # SIGSEGV that took the whole process (the server) down in about 70% of runs of this
    # script. In subprocesses, so that a crash fails this test instead of ending the suite.
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    for seed in range(5):
        run = subprocess.run(
            [sys.executable, "-c", _CRASHER, str(seed)], env=env, capture_output=True, timeout=120
        )
        assert run.returncode == 0, (seed, run.returncode, run.stderr[-500:])
    assert "rm -rf /" in unfold("{ rm -rf /; } # \U0001f600")

"""The README's quickstart runbook runs as written."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from harness import ROOT


@pytest.mark.skipif(shutil.which("curl") is None, reason="the runbook uses curl")
def test_quickstart_runbook_passes() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")}
    env["PYTHON"] = sys.executable
    out = subprocess.run(
        ["bash", str(ROOT / "examples" / "quickstart.sh")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("  ok: ") == 5
    assert "quickstart: all steps passed" in out.stdout

"""`gatehouse serve` refuses settings it cannot honour before it starts anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import gh

from gatehouse.config import MIN_SESSION_PROVENANCE, Settings
from gatehouse.errors import BadRequest


def test_a_session_provenance_bound_under_the_minimum_is_refused(tmp_path: Path) -> None:
    out = gh("serve", "--data-dir", tmp_path / "d", "--port", "0", "--session-provenance-chars", "1000")
    assert out.returncode == 2
    assert "at least 4194304 characters" in out.stderr
    assert not (tmp_path / "d").exists()  # nothing was created


def test_the_session_provenance_bound_reaches_the_step_gate(tmp_path: Path) -> None:
    from gatehouse.control.plane import ControlPlane

    with pytest.raises(BadRequest) as exc:
        Settings(session_provenance_chars=MIN_SESSION_PROVENANCE - 1)
    assert exc.value.code == "invalid_session_bound"
    plane = ControlPlane(Settings(data_dir=tmp_path, session_provenance_chars=8 << 20))
    assert plane.step_gate.bound == 8 << 20 and plane.step_gate.views.bound == 8 << 20

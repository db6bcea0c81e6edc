"""F4 of the adversarial probe: a signature nobody could check is never reported as signed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harness import SEED


def _keys(tmp_path: Path) -> Path:
    r = subprocess.run(
        [sys.executable, "-m", "gatehouse", "keys", "generate", "--out", str(tmp_path / "ops")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    return tmp_path


def _sign(keys: Path, bundle: Path, serial: int) -> str:
    out = keys / f"signed-{serial}.json"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "gatehouse",
            "policy",
            "sign",
            str(bundle),
            "--key",
            str(keys / "ops.key"),
            "--serial",
            str(serial),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    return out.read_text()


def _installed_entries(admin) -> list[dict]:
    r = admin.get("/api/v1/audit", params={"stream": "system", "limit": 5000})
    assert r.status_code == 200, r.text
    return [e["data"] for e in r.json()["entries"] if e["type"] == "policy.installed"]


def test_a_forged_signature_without_trusted_keys_is_reported_unsigned(server_factory) -> None:
    s = server_factory()
    forged = {"key_id": "ops-prod-hsm", "serial": 42, "sig": "forged"}
    bundle = SEED.read_text().replace("name: seed", "name: forged")
    with s.admin() as admin:
        r = admin.put("/api/v1/policy", json={"bundle": bundle, "signature": forged})
        assert r.status_code == 200, r.text
        assert r.json()["signed"] is False and r.json()["signature_verified"] is False
        got = admin.get("/api/v1/policy").json()
        assert got["signed"] is False and got["signature_verified"] is False
        assert got["signature"] == forged  # the block is kept, for whoever checks it later
        assert got["serial"] is None  # the sender's serial is not the bundle's
        entry = _installed_entries(admin)[-1]
        assert entry["signed"] is False and entry["signature_verified"] is False
        assert entry["key_id"] is None and entry["claimed_key_id"] == "ops-prod-hsm"
        assert "not verified" in entry["warning"]


def test_a_trusted_signature_is_reported_signed_and_verified(server_factory, tmp_path: Path) -> None:
    keys = _keys(tmp_path)
    s = server_factory(SEED, "--trust-key", str(keys / "ops.pub"))
    bundle = tmp_path / "v2.yaml"
    bundle.write_text(SEED.read_text().replace("name: seed", "name: v2"))
    with s.admin() as admin:
        r = admin.put("/api/v1/policy", content=_sign(keys, bundle, 7))
        assert r.status_code == 200, r.text
        got = admin.get("/api/v1/policy").json()
        assert got["signed"] is True and got["signature_verified"] is True and got["serial"] == 7
        entry = _installed_entries(admin)[-1]
        assert entry["signed"] is True and entry["signature_verified"] is True
        assert entry["key_id"] == got["signature"]["key_id"] and entry["warning"] is None

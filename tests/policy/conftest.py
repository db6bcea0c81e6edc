"""Shared fixtures for the policy engine tests.

`tests/` is not a package, so this directory goes on `sys.path` to let the tests import the
naive reference evaluator in `_reference.py`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import gatehouse.policy as gp

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SEED = REPO / "examples" / "policies" / "seed.yaml"

if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


@pytest.fixture(scope="session")
def seed_text() -> str:
    return SEED.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def seed(seed_text: str) -> gp.Policy:
    return gp.load(seed_text)

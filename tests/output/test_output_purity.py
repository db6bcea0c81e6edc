"""`gatehouse.output` is pure core: the standard library, `gatehouse.policy` and
`gatehouse.ingress` (the shared table of secret shapes) only; no I/O.

A worker's output is judged on the job's hot path and replayed in tests and benchmarks: the gate
must give the same verdict for the same output and rules, whatever the clock, disk or network.
(`tests/policy/test_policy_purity.py` also walks this package with the shared rules; this test
holds it to the stricter list the output gate was built to.)
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "gatehouse" / "output"

# Standard-library modules that would bring a clock, I/O, concurrency or randomness into the gate.
FORBIDDEN_STDLIB = frozenset(
    {
        "asyncio",
        "datetime",
        "http",
        "importlib",
        "io",
        "multiprocessing",
        "os",
        "pathlib",
        "random",
        "secrets",
        "shutil",
        "socket",
        "sqlite3",
        "subprocess",
        "sys",
        "tempfile",
        "threading",
        "time",
        "urllib",
        "uuid",
    }
)
ALLOWED_GATEHOUSE = ("gatehouse.policy", "gatehouse.output", "gatehouse.ingress")


def imports(source: str, package: str = "gatehouse.output") -> list[tuple[str, int]]:
    """(absolute module name, line) for every import in `source`, nested ones too."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{parent}.{base}".rstrip(".")
            found.append((base, node.lineno))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "__import__":
            found.append(("__import__", node.lineno))
    return found


def allowed(module: str) -> bool:
    if any(module == p or module.startswith(p + ".") for p in ALLOWED_GATEHOUSE):
        return True
    top = module.split(".")[0]
    if top == "__future__":
        return True
    return top in sys.stdlib_module_names and top not in FORBIDDEN_STDLIB


MODULES = sorted(PACKAGE.glob("*.py"))


def test_the_package_has_modules_to_check() -> None:
    assert {p.name for p in MODULES} >= {"__init__.py", "detectors.py", "gate.py", "validators.py"}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_imports_are_stdlib_or_the_pure_core_only(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    bad = [f"{path.name}:{line} imports {mod}" for mod, line in imports(source) if not allowed(mod)]
    assert bad == []


@pytest.mark.parametrize(
    "source",
    [
        "import time\n",
        "from datetime import datetime\n",
        "def f():\n    import os\n",
        "import yaml\n",
        "import orjson\n",
        "from gatehouse.store import sqlite\n",
        "from gatehouse.domain.jobs import Job\n",
        "from ..api import app\n",
        "from gatehouse import kernel\n",
        "m = __import__('socket')\n",
        "import importlib\n",
    ],
)
def test_the_checker_rejects_impure_imports(source: str) -> None:
    # Guard the guard: a checker that allowed everything would make the test above meaningless.
    assert not all(allowed(mod) for mod, _ in imports(source))


@pytest.mark.parametrize(
    "source",
    [
        "from __future__ import annotations\nimport re, json, ipaddress, base64\n",
        "from gatehouse.policy import OutputRule\nfrom gatehouse.policy.glob import compile_glob\n",
        "from gatehouse.ingress.secrets import shape\n",
        "from .detectors import Detector\nfrom . import gate\n",
    ],
)
def test_the_checker_accepts_pure_imports(source: str) -> None:
    assert all(allowed(mod) for mod, _ in imports(source))


def test_importing_the_gate_loads_no_io_machinery() -> None:
    # The AST check sees direct imports; this sees what actually gets loaded, transitively.
    code = textwrap.dedent(
        """
        import sys
        import gatehouse.output
        bad = {"asyncio", "socket", "sqlite3", "subprocess", "ssl", "selectors", "http", "orjson",
               "fastapi", "starlette", "httpx", "uvicorn", "sqlalchemy", "nats"}
        print(sorted(m for m in sys.modules if m.split(".")[0] in bad))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"

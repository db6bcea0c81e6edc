"""The pure core stays pure: no clock, no database, no network, no processes (STYLE.md habit 1).

Every module of `gatehouse/policy/` (and of `gatehouse/ingress/` and `gatehouse/output/` when
they exist) may import only the standard library, `gatehouse.errors` and the pure packages
themselves; YAML parsing sits at the loader's edge, so `yaml` is allowed in
`gatehouse/policy/_nodes.py` (the node readers) and `gatehouse/policy/loader.py` alone, and the
bash grammar (`tree_sitter`) in `gatehouse/ingress/shell.py` alone. Some
standard modules are I/O or nondeterminism in disguise and are forbidden outright.
"""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PURE_PACKAGES = ("gatehouse.policy", "gatehouse.ingress", "gatehouse.output")
FORBIDDEN = frozenset(
    {"time", "datetime", "asyncio", "socket", "sqlite3", "os", "random", "subprocess"}
    # Dynamic imports would walk around this test.
    | {"importlib"}
)
ALLOWED_THIRD_PARTY = {
    "gatehouse/policy/loader.py": {"yaml"},
    "gatehouse/policy/_nodes.py": {"yaml"},
    # RE2 (linear-time regex, a C++ library over a string) for `matches`, in one module.
    "gatehouse/policy/_regex.py": {"re2"},
    # The maintained JSON Schema validator for the catalog's params, in one module.
    "gatehouse/policy/_jsonschema.py": {"jsonschema"},
    # A parser in C over a string: no I/O, no clock (it reads shell the way bash does).
    "gatehouse/ingress/shell.py": {"tree_sitter", "tree_sitter_bash"},
    "gatehouse/ingress/needles.py": {"re2"},
}


def _existing_packages() -> list[str]:
    return [p for p in PURE_PACKAGES if (REPO / p.replace(".", "/") / "__init__.py").exists()]


def _modules() -> list[Path]:
    out: list[Path] = []
    for pkg in _existing_packages():
        out.extend(sorted((REPO / pkg.replace(".", "/")).rglob("*.py")))
    return out


def _module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_names(source: str, module: str, *, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, absolute module name) for every import anywhere in `source`, nested ones too."""
    package = module if is_package else module.rpartition(".")[0]
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = importlib.util.resolve_name("." * node.level + base, package)
            # `from pkg import name` may import the submodule `pkg.name`: judge that name.
            for alias in node.names:
                out.append((node.lineno, f"{base}.{alias.name}" if alias.name != "*" else base))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "__import__":
            out.append((node.lineno, "__import__"))
    return out


def violations(source: str, module: str, rel_path: str, *, is_package: bool = False) -> list[str]:
    pure = _existing_packages() or list(PURE_PACKAGES)
    extra = ALLOWED_THIRD_PARTY.get(rel_path, set())
    bad: list[str] = []
    for line, name in imported_names(source, module, is_package=is_package):
        top = name.split(".")[0]
        if top == "gatehouse":
            ok = name == "gatehouse.errors" or any(name == p or name.startswith(p + ".") for p in pure)
            # `from gatehouse import errors` / `from gatehouse.policy import x`: names inside.
            ok = ok or name.startswith("gatehouse.errors.")
        elif top in FORBIDDEN or name == "__import__":
            ok = False
        elif top == "__future__" or top in sys.stdlib_module_names:
            ok = True
        else:
            ok = top in extra
        if not ok:
            bad.append(f"{rel_path}:{line}: imports `{name}`")
    return bad


MODULES = _modules()


def test_there_are_modules_to_check() -> None:
    names = {p.relative_to(REPO).as_posix() for p in MODULES}
    for required in (
        "gatehouse/policy/__init__.py",
        "gatehouse/policy/loader.py",
        "gatehouse/policy/compiler.py",
        "gatehouse/policy/engine.py",
        "gatehouse/policy/glob.py",
        "gatehouse/policy/model.py",
    ):
        assert required in names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_pure_module_imports(path: Path) -> None:
    rel = path.relative_to(REPO).as_posix()
    source = path.read_text(encoding="utf-8")
    assert violations(source, _module_name(path), rel, is_package=path.name == "__init__.py") == []


@pytest.mark.parametrize(
    ("source", "culprit"),
    [
        ("import time\n", "time"),
        ("from datetime import datetime\n", "datetime.datetime"),
        ("import os.path\n", "os.path"),
        ("def f():\n    import sqlite3\n", "sqlite3"),
        ("import asyncio, json\n", "asyncio"),
        ("from random import choice\n", "random.choice"),
        ("import subprocess\n", "subprocess"),
        ("import socket\n", "socket"),
        ("import yaml\n", "yaml"),  # only the loader may
        ("import requests\n", "requests"),
        ("from gatehouse.store import sqlite\n", "gatehouse.store.sqlite"),
        ("from gatehouse import kernel\n", "gatehouse.kernel"),
        ("from ..kernel import Kernel\n", "gatehouse.kernel.Kernel"),
        ("if True:\n    from gatehouse.api import app\n", "gatehouse.api.app"),
        ("m = __import__('socket')\n", "__import__"),
        ("import importlib\n", "importlib"),
    ],
)
def test_the_checker_catches_impure_imports(source: str, culprit: str) -> None:
    # A test that cannot fail is a defect: show that this one does.
    found = violations(source, "gatehouse.policy.engine", "gatehouse/policy/engine.py")
    assert any(v.endswith(f"imports `{culprit}`") for v in found), found


def test_violations_name_file_and_line() -> None:
    source = "import re\n\n\ndef f():\n    import socket\n"
    assert violations(source, "gatehouse.policy.glob", "gatehouse/policy/glob.py") == [
        "gatehouse/policy/glob.py:5: imports `socket`"
    ]


@pytest.mark.parametrize(
    "source",
    [
        "from __future__ import annotations\nimport re, json, hashlib\n",
        "from collections.abc import Mapping\nfrom dataclasses import dataclass\n",
        "from gatehouse.errors import PolicyError\n",
        "from gatehouse import errors\n",
        "from . import glob\nfrom .model import Rule\n",
        "from gatehouse.policy.glob import compile_glob\n",
        "from gatehouse.ingress.text import clean_text\n",
    ],
)
def test_the_checker_accepts_pure_imports(source: str) -> None:
    assert violations(source, "gatehouse.policy.engine", "gatehouse/policy/engine.py") == []


def test_yaml_is_allowed_in_the_loader_only() -> None:
    assert violations("import yaml\n", "gatehouse.policy.loader", "gatehouse/policy/loader.py") == []
    assert violations("import yaml\n", "gatehouse.policy.glob", "gatehouse/policy/glob.py") != []


def test_importing_the_pure_core_loads_no_io_machinery() -> None:
    # The AST check sees direct imports; this sees what actually gets loaded, transitively.
    # (`os`, `time` and friends arrive through the standard library itself, so only the
    # unmistakable I/O modules are checked here.)
    code = textwrap.dedent(
        f"""
        import importlib, sys
        for pkg in {_existing_packages()!r}:
            importlib.import_module(pkg)
        bad = {{"asyncio", "socket", "sqlite3", "subprocess", "ssl", "selectors", "http",
                "fastapi", "starlette", "httpx", "uvicorn", "sqlalchemy", "nats"}}
        print(sorted(m for m in sys.modules if m.split(".")[0] in bad))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"

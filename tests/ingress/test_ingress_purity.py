"""`gatehouse.ingress` is pure core: stdlib and `gatehouse.errors` only (and the bash grammar in
`shell.py`); no clock, no I/O."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "gatehouse" / "ingress"

# Standard-library modules that would bring a clock, I/O, concurrency or randomness into the core.
FORBIDDEN_STDLIB = {
    "asyncio",
    "datetime",
    "http",
    "multiprocessing",
    "os",
    "pathlib",
    "random",
    "secrets",
    "shutil",
    "socket",
    "sqlite3",
    "subprocess",
    "tempfile",
    "threading",
    "time",
    "urllib",
    "uuid",
}


def _imports(path: Path) -> list[tuple[str, int]]:
    """(absolute module name, line) for every import in `path`; relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                found.append((f"gatehouse.ingress.{node.module or ''}".rstrip("."), node.lineno))
            else:
                found.append((node.module or "", node.lineno))
    return found


# Third-party modules allowed in one file each: a parser or matcher over a string, no I/O.
THIRD_PARTY = {"shell.py": {"tree_sitter", "tree_sitter_bash"}, "needles.py": {"re2"}}


def _allowed(module: str, file: str = "") -> bool:
    top = module.split(".")[0]
    if top in THIRD_PARTY.get(file, ()):
        return True
    if module == "gatehouse.errors" or module == "gatehouse.ingress":
        return True
    if module.startswith("gatehouse.ingress."):
        return True
    return top in sys.stdlib_module_names and top not in FORBIDDEN_STDLIB


def test_the_package_has_modules_to_check() -> None:
    assert len(list(PACKAGE.glob("*.py"))) >= 5


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_imports_are_stdlib_or_gatehouse_errors_only(path: Path) -> None:
    imports = _imports(path)
    bad = [f"{path.name}:{line} imports {mod}" for mod, line in imports if not _allowed(mod, path.name)]
    assert bad == []


def test_the_checker_rejects_what_it_should() -> None:
    # Guard the guard: a checker that allowed everything would make the test above meaningless.
    assert not _allowed("yaml")
    assert not _allowed("gatehouse.policy")
    assert not _allowed("gatehouse.api.app")
    assert not _allowed("time")
    assert not _allowed("asyncio")
    assert _allowed("re")
    assert _allowed("gatehouse.errors")
    assert _allowed("gatehouse.ingress.text")
    assert not _allowed("tree_sitter", "classify.py")
    assert _allowed("tree_sitter", "shell.py")

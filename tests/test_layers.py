"""Imports run only downward (DESIGN.md section 2, STYLE.md habit 11).

Every module of `gatehouse` belongs to a floor; a module may import its own floor and the floors
below it, never one above. Lazy imports inside functions count too: a hidden upward import is
still an upward import. Within one floor, packages may import each other but never in a circle
(`audit` is imported by `store`, so `audit` must not import `store`).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "gatehouse"

# Top floor first. A unit is a subpackage or a top-level module of `gatehouse`.
FLOORS: tuple[tuple[str, ...], ...] = (
    ("api", "mcp", "commands", "ui", "redteam", "cli", "__main__", "client", "guard"),
    ("control", "steps", "broker", "sandbox"),
    ("kernel", "audit", "store", "bus"),
    ("domain",),
    ("policy", "ingress", "output"),
    ("errors", "config", "metrics", "crypto", "__init__"),
)
FLOOR = {unit: len(FLOORS) - i for i, units in enumerate(FLOORS) for unit in units}


def _unit(module: str) -> str | None:
    """The unit of a `gatehouse...` module name; None for anything outside the package."""
    parts = module.split(".")
    if parts[0] != "gatehouse":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> Iterator[tuple[str, int]]:
    """(absolute module, line) of every import in `path`, lazy ones included; relative imports
    resolved; `from a import b` yields `a.b` too, since `b` may be a module."""
    is_package = path.name == "__init__.py"
    here = _module_name(path).split(".")
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here if is_package else here[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            else:
                module = node.module or ""
            yield module, node.lineno
            for alias in node.names:
                yield f"{module}.{alias.name}", node.lineno


def _unit_of_path(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


MODULES = sorted(PACKAGE.rglob("*.py"))


def _edges() -> dict[str, dict[str, str]]:
    """unit -> {imported unit: where (first place seen)}."""
    edges: dict[str, dict[str, str]] = {}
    for path in MODULES:
        src = _unit_of_path(path)
        for module, line in _imports(path):
            dst = _unit(module)
            if dst is not None and dst != src and dst in FLOOR:
                edges.setdefault(src, {}).setdefault(dst, f"{path.relative_to(ROOT)}:{line}")
    return edges


def test_every_module_has_a_floor() -> None:
    unplaced = sorted({_unit_of_path(p) for p in MODULES} - FLOOR.keys())
    assert unplaced == [], f"add these to a floor in FLOORS: {unplaced}"


def _is_upward(src: str, module: str) -> bool:
    dst = _unit(module)
    return dst is not None and dst in FLOOR and FLOOR[dst] > FLOOR[src]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_import_runs_upward(path: Path) -> None:
    src = _unit_of_path(path)
    upward = [
        f"{path.relative_to(ROOT)}:{line} ({src}) imports {module}"
        for module, line in _imports(path)
        if _is_upward(src, module)
    ]
    assert upward == []


def test_no_circle_between_packages() -> None:
    edges = _edges()
    circles: list[str] = []
    for a, targets in edges.items():
        for b, where in targets.items():
            back = edges.get(b, {}).get(a)
            if back is not None and a < b:
                circles.append(f"{a} <-> {b}: {where} and {back}")
    assert circles == []


def test_the_checker_sees_what_it_should() -> None:
    # Guard the guard: a relative import resolves, a lazy import counts, and an upward edge is
    # one the rules reject.
    path = PACKAGE / "control" / "plane.py"
    found = {m for m, _ in _imports(path)}
    assert "gatehouse.control.submit" in found
    assert FLOOR["store"] > FLOOR["domain"] > FLOOR["policy"] > FLOOR["errors"]
    assert FLOOR["api"] > FLOOR["control"] > FLOOR["kernel"]
    # The two imports this layout was made to cut, and two more that would be wrong.
    assert _is_upward("control", "gatehouse.api.schemas")
    assert _is_upward("domain", "gatehouse.store.base")
    assert _is_upward("store", "gatehouse.control.lookup")
    assert _is_upward("policy", "gatehouse.domain.jobs")
    assert not _is_upward("api", "gatehouse.control.submit")
    assert not _is_upward("store", "gatehouse.audit.chain")
    assert not _is_upward("control", "httpx")
    lazy = "def f():\n    from gatehouse.api.app import create_app\n"
    tree = ast.parse(lazy)
    assert any(isinstance(n, ast.ImportFrom) and n.module == "gatehouse.api.app" for n in ast.walk(tree))

"""Every error code the code base can raise, read from its source: the ground truth the
documented per-route tables (`api.openapi.ERRORS`) are checked against.

    found = scan()                      # code -> RaisedCode(status, raisers, modules)
    documented = documented_codes(app.openapi())     # code -> {"METHOD /path": statuses}
    catalogue(found, documented, NOT_PER_ROUTE)      # the rows of `docs/api.md`'s "Error codes"

Theory of operation. An error code is born in one of three places, all literal in the source:
the `code=` argument of a call (`NotFound("...", code="job_not_found")`, or a helper such as
`moved_or_conflict(..., code="not_pending")`), the `code` class attribute of an error class
(`class Denied(GatehouseError): code = "denied"`), or the default of a helper's `code`
parameter (`def require_role(..., code: str = "missing_role")`). A module-level string constant
named there (`code=CONTAINED_CODE`) counts as its value. Codes built at run time from an
f-string (`f"bundle_{reason}"`, `f"invalid_{field}"`) are kept as patterns (`bundle_*`).

The HTTP status of a code follows from the class that carries it (`api.errors.status_for`);
for a code passed to a helper, from the error class the helper raises, named in `_HELPERS`. A
call that passes a literal `code=` to anything else is reported in `unknown_raisers`, so a new
helper cannot hide its codes from the check.

This reads files, so it runs where the docs are built and checked (`scripts/gen_docs.py`,
`tests/test_docs.py`), never on a request.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gatehouse import errors as E
from gatehouse.api.errors import status_for

__all__ = ["PACKAGE", "RaisedCode", "Scan", "catalogue", "documented_codes", "scan"]

PACKAGE = Path(__file__).resolve().parent.parent

# Calls that take a `code=` that is no Gatehouse error code (JSON-RPC error objects of the MCP
# gateway; a sandboxed handler's failure record).
_NOT_ERRORS = frozenset({"ErrorData", "HandlerFailure", "JSONRPCError"})


@dataclass
class RaisedCode:
    """One code: the HTTP status its class maps to (None: it never reaches HTTP as an error
    answer, e.g. the SDK's own exceptions), the classes or helpers that raise it, and where."""

    code: str
    statuses: set[int] = field(default_factory=set)
    raisers: set[str] = field(default_factory=set)
    modules: set[str] = field(default_factory=set)

    @property
    def status(self) -> int | None:
        return min(self.statuses) if self.statuses else None


@dataclass
class Scan:
    codes: dict[str, RaisedCode]
    patterns: dict[str, RaisedCode]  # `bundle_*` -> where such codes are built
    unknown_raisers: list[str]  # `module:line: name(code=...)` that the scan cannot map

    def knows(self, code: str) -> bool:
        """`code` is raised literally, or matches a pattern built at run time."""
        return code in self.codes or any(code.startswith(p[:-1]) for p in self.patterns)


@dataclass(frozen=True)
class _ErrorClass:
    status: int  # what `api.errors.status_for` answers for it
    code: str  # its class attribute (a raise without `code=` carries it)


def _status(cls: type[E.GatehouseError]) -> int:
    return status_for(cls.__new__(cls))


# Helpers that take a `code=` and raise it as this error class.
_HELPERS: Mapping[str, _ErrorClass] = {
    "moved_or_conflict": _ErrorClass(_status(E.Conflict), E.Conflict.code),  # control/lookup.py
    "check_request": _ErrorClass(_status(E.BadRequest), E.BadRequest.code),  # domain/requests.py
    "require_role": _ErrorClass(_status(E.Forbidden), E.Forbidden.code),  # domain/identity.py
}


def _base(node: ast.expr) -> str | None:
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None


def _error_classes(trees: Iterable[ast.Module]) -> dict[str, _ErrorClass]:
    """Every error class of the package, by name: the tree of `gatehouse.errors`, and every class
    the source derives from one of them (read from the source, not from what happens to be
    imported: an optional driver's errors count though its module is not loaded)."""
    out = {
        name: _ErrorClass(_status(cls), cls.code)
        for name, cls in vars(E).items()
        if isinstance(cls, type) and issubclass(cls, E.GatehouseError)
    }
    defs = [n for tree in trees for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name not in out]
    grew = True
    while grew:  # a class may derive from one defined later, or in another module
        grew = False
        for node in defs:
            if node.name in out:
                continue
            base = next((out[b] for b in map(_base, node.bases) if b in out), None)
            if base is None:
                continue
            own = next(
                (
                    st.value.value
                    for st in node.body
                    if isinstance(st, ast.Assign)
                    and any(isinstance(t, ast.Name) and t.id == "code" for t in st.targets)
                    and isinstance(st.value, ast.Constant)
                    and isinstance(st.value.value, str)
                ),
                None,
            )
            out[node.name] = _ErrorClass(base.status, own or base.code)
            grew = True
    return out


def _callee(node: ast.Call) -> str | None:
    fn = node.func
    if isinstance(fn, ast.Name):
        return fn.id
    if isinstance(fn, ast.Attribute):
        return fn.attr
    return None


def _constants(tree: ast.Module) -> dict[str, str]:
    out = {}
    for st in tree.body:
        if (
            isinstance(st, ast.Assign)
            and isinstance(st.value, ast.Constant)
            and isinstance(st.value.value, str)
        ):
            for t in st.targets:
                if isinstance(t, ast.Name):
                    out[t.id] = st.value.value
    return out


def _literal(node: ast.expr, consts: Mapping[str, str]) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return consts.get(node.id)
    return None


def _pattern(node: ast.expr) -> str | None:
    """`bundle_*` for `f"bundle_{reason}"`: the literal head of an f-string."""
    if isinstance(node, ast.JoinedStr) and node.values:
        head = node.values[0]
        if isinstance(head, ast.Constant) and isinstance(head.value, str) and head.value:
            return head.value + "*"
    return None


def _builds_code(node: ast.ClassDef) -> bool:
    """The class's constructor passes an f-string `code=` up (`code=f"bundle_{reason}"`)."""
    return any(
        isinstance(sub, ast.Call)
        and _callee(sub) == "__init__"
        and any(_pattern(k.value) for k in sub.keywords if k.arg == "code")
        for sub in ast.walk(node)
    )


def _files(root: Path) -> Iterator[Path]:
    yield from sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def scan(root: Path = PACKAGE) -> Scan:
    """Every error code raised in the package at `root` (see the module docstring)."""
    trees = {path: ast.parse(path.read_text(), filename=str(path)) for path in _files(root)}
    classes = _error_classes(trees.values())
    codes: dict[str, RaisedCode] = {}
    patterns: dict[str, RaisedCode] = {}
    unknown: list[str] = []

    def add(table: dict[str, RaisedCode], code: str, raiser: str, module: str) -> None:
        item = table.setdefault(code, RaisedCode(code))
        item.raisers.add(raiser)
        item.modules.add(module)
        known = classes.get(raiser) or _HELPERS.get(raiser)
        if known is not None and not module.startswith(_OFF_HTTP):
            item.statuses.add(known.status)

    # Error classes whose constructor builds the code (`BundleRefused`: `bundle_<reason>`): a
    # call without `code=` raises the built one, not the class attribute.
    dynamic = {
        node.name
        for tree in trees.values()
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef) and node.name in classes and _builds_code(node)
    }
    for path, tree in trees.items():
        module = path.relative_to(root.parent).with_suffix("").as_posix().replace("/", ".")
        consts = _constants(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = _callee(node)
                if (
                    name in classes
                    and name not in dynamic
                    and not any(k.arg == "code" or k.arg is None for k in node.keywords)
                ):
                    add(codes, classes[name].code, name, module)  # `raise NotFound("...")`: the class's
                for kw in node.keywords:
                    if kw.arg != "code" or name is None or name in _NOT_ERRORS or name == "__init__":
                        continue
                    literal, pattern = _literal(kw.value, consts), _pattern(kw.value)
                    if literal is None and pattern is None:
                        continue  # a code passed on (`code=code`): counted where it is born
                    if name not in classes and name not in _HELPERS:
                        unknown.append(f"{module}:{node.lineno}: {name}(code=...)")
                        continue
                    if literal is not None:
                        add(codes, literal, name, module)
                    elif pattern is not None:
                        add(patterns, pattern, name, module)
            elif isinstance(node, ast.ClassDef) and node.name in classes:
                for sub in ast.walk(node):
                    # `super().__init__(..., code=f"bundle_{reason}")` inside an error class.
                    if isinstance(sub, ast.Call) and _callee(sub) == "__init__":
                        for kw in sub.keywords:
                            if kw.arg == "code" and (pattern := _pattern(kw.value)) is not None:
                                add(patterns, pattern, node.name, module)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in _HELPERS:
                args = node.args
                for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
                    if arg.arg == "code" and default is not None and (literal := _literal(default, consts)):
                        add(codes, literal, node.name, module)
    _http_edge(codes, patterns)
    return Scan(codes=codes, patterns=patterns, unknown_raisers=sorted(unknown))


# Modules whose errors are raised in another process than the server's: the SDK's (in the
# agent's) and the CLI's (in the operator's shell). Their codes never arrive in an HTTP answer.
_OFF_HTTP = ("gatehouse.guard", "gatehouse.client", "gatehouse.commands.", "gatehouse.cli")


def _http_edge(codes: dict[str, RaisedCode], patterns: dict[str, RaisedCode]) -> None:
    """The codes the HTTP edge answers itself (`api/errors.py`): a body that is not JSON, a
    request that fails validation (`invalid_<field>`), an unknown route, an unexpected error."""
    from gatehouse.api import errors as http

    edge = [(code, status, "HTTPException") for status, code in http._HTTP_CODES.items()]
    edge += [
        ("invalid_json", 400, "RequestValidationError"),
        ("invalid_request", 422, "RequestValidationError"),
    ]
    edge += [("route_not_found", 404, "HTTPException"), ("internal_error", 500, "Exception")]
    for code, status, raiser in edge:
        item = codes.setdefault(code, RaisedCode(code))
        item.statuses.add(status)
        item.raisers.add(raiser)
        item.modules.add("gatehouse.api.errors")
    item = patterns.setdefault("invalid_*", RaisedCode("invalid_*", {422}))
    item.raisers.add("RequestValidationError")
    item.modules.add("gatehouse.api.errors")


def documented_codes(openapi: Mapping[str, Any]) -> dict[str, dict[str, set[int]]]:
    """code -> {"METHOD /path" -> statuses}: the error codes the OpenAPI document lists per
    operation (each error response's `error.code` examples, as `api.openapi` writes them)."""
    out: dict[str, dict[str, set[int]]] = {}
    for path, ops in openapi.get("paths", {}).items():
        for method, op in ops.items():
            for status, response in op.get("responses", {}).items():
                if status[:1] not in ("4", "5"):
                    continue
                schema = response.get("content", {}).get("application/json", {}).get("schema", {})
                for part in schema.get("allOf", ()):
                    names = part.get("properties", {}).get("error", {}).get("properties", {})
                    for name in names.get("code", {}).get("examples", ()):
                        out.setdefault(name, {}).setdefault(f"{method.upper()} {path}", set()).add(
                            int(status)
                        )
    return out


_MANY = 6  # past this many operations a code's row gives their number, not their list


def catalogue(
    found: Scan, documented: Mapping[str, Mapping[str, set[int]]], elsewhere: Mapping[str, str]
) -> list[tuple[str, str, str, str]]:
    """Rows `(code, status, raised in, where a client meets it)` for every code raised over
    HTTP, sorted: the routes that list it, or why no route does (`elsewhere`)."""
    rows = []
    for table in (found.codes, found.patterns):
        for code, item in table.items():
            if item.status is None:
                continue
            if code.endswith("*"):
                routes = sorted({r for c, by in documented.items() if c.startswith(code[:-1]) for r in by})
            else:
                routes = sorted(documented.get(code, {}))
            where = (
                ", ".join(f"`{r}`" for r in routes) if len(routes) <= _MANY else f"{len(routes)} operations"
            )
            if not routes:
                where = elsewhere.get(code, "")
            modules = sorted(m.removeprefix("gatehouse.") for m in item.modules)
            statuses = ", ".join(str(st) for st in sorted(item.statuses))
            rows.append((code, statuses, ", ".join(modules), where))
    return sorted(rows)

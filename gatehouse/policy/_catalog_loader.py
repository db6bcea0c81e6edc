"""The bundle's `adapters:` read node by node into a `Catalog`, every error with its line.

What each kind may carry (an unknown key, or one that does not apply to the kind, is an error):

- `http`: `base_url` (required, under `egress`), `egress`, `credential`, `rate_limit`, `actions`
  with `method` (an HTTP method) and `path` (`{name}`s declared and required by `params`);
- `external`: `rate_limit`, `actions` (the caller executes them, so no wire settings);
- `mcp`: exactly one of `command` (a stdio server: `env`, `sandbox`) and `url` (under `egress`;
  `credential`), `egress`, `rate_limit`, `actions` (overrides per tool: `params`, `effect`,
  `output`).

Every action may carry `params` (a JSON Schema, checked against its metaschema and compiled
once), `effect` and `output`. A minted credential's `ttl` is 5 to 15 minutes.
"""

from __future__ import annotations

import re
from typing import Any

from gatehouse.policy._durations import parse_duration
from gatehouse.policy._jsonschema import SchemaProblem, compile_params_schema
from gatehouse.policy._nodes import (
    Ctx,
    MappingNode,
    ScalarNode,
    SequenceNode,
    boolean,
    choice,
    compose,
    item_node,
    mapping,
    plain,
    scalar,
    str_list,
    string,
)
from gatehouse.policy.catalog import (
    ADAPTER_KINDS,
    EFFECTS,
    HTTP_METHODS,
    OUTPUT_TRUST,
    Action,
    Adapter,
    Catalog,
    Credential,
    EgressEntry,
    EgressError,
    EnvVar,
    RateLimit,
    Sandbox,
    parse_egress,
    parse_rate_limit,
    split_url,
)

__all__ = ["read_catalog", "read_sandbox"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_SECRET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_HEADER = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$")
_PATH_PARAM = re.compile(r"\{([^{}]*)\}")
_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SIZE = re.compile(r"^\s*([0-9]+)\s*(|k|ki|m|mi|g|gi)\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 10**3, "ki": 2**10, "m": 10**6, "mi": 2**20, "g": 10**9, "gi": 2**30}

_COMMON = ("kind", "description", "rate_limit", "actions")
_KEYS = {
    "http": (*_COMMON, "base_url", "egress", "credential"),
    "external": _COMMON,
    "mcp": (*_COMMON, "command", "env", "url", "egress", "credential", "sandbox"),
}
_ACTION_COMMON = ("description", "params", "effect", "output")
_ACTION_KEYS = {"http": (*_ACTION_COMMON, "method", "path", "body"), "external": _ACTION_COMMON,
                "mcp": _ACTION_COMMON}  # fmt: skip
_CREDENTIAL_KEYS = ("secret", "mint", "audience", "ttl", "header", "format")
_SANDBOX_KEYS = ("network", "read", "write", "memory", "cpu_seconds", "processes", "wall_seconds")
_TTL_MIN, _TTL_MAX = 5 * 60, 15 * 60


def read_catalog(cx: Ctx, node: Any) -> Catalog:
    """`adapters: {name: {...}}` -> `Catalog` (an empty or null `adapters:` is an empty one)."""
    cx.rule_id = None
    if isinstance(node, ScalarNode) and plain(node) is None:
        return Catalog()
    out: dict[str, Adapter] = {}
    mapping(cx, node, "`adapters`", None)  # string keys, no duplicates
    for knode, anode in node.value:
        name = plain(knode)
        if not _NAME.fullmatch(name):
            cx.fail(knode, f"bad adapter name `{name}` (use letters, digits, `_`, `.` and `-`)")
        if name.lower() in out:
            cx.fail(knode, f"adapter `{name}` is listed twice (adapter names ignore case)")
        out[name.lower()] = _adapter(cx, name, knode, anode)
    return Catalog(adapters=out)


def _adapter(cx: Ctx, name: str, knode: Any, node: Any) -> Adapter:
    """Adapter `name` from its value `node`; a missing setting is reported at its key's line (`knode`)."""
    what = f"adapter `{name}`"
    if not isinstance(node, MappingNode):
        cx.fail(node, f"{what} must be a mapping")
    body = mapping(cx, node, what, None)
    if "kind" not in body:
        cx.fail(knode, f"{what} needs `kind` (one of {', '.join(ADAPTER_KINDS)})")
    kind = choice(cx, body["kind"], f"kind of {what}", ADAPTER_KINDS)
    allowed = _KEYS[kind]
    for key, vnode in body.items():
        if key not in allowed:
            cx.fail(
                vnode,
                f"unknown key `{key}` in {what} of kind `{kind}` (expected one of {', '.join(allowed)})",
            )
    egress = _egress(cx, body["egress"], what) if "egress" in body else ()
    kw: dict[str, Any] = {}
    if kind == "http":
        if "base_url" not in body:
            cx.fail(knode, f"{what} of kind `http` needs `base_url`")
        kw["base_url"] = _url_under(cx, body["base_url"], f"`base_url` of {what}", egress)
    if kind == "mcp":
        given = [k for k in ("command", "url") if k in body]
        if len(given) != 1:
            cx.fail(knode, f"{what} of kind `mcp` needs exactly one of `command` (a stdio server) and `url`")
        if "command" in body:
            kw["command"] = tuple(_command(cx, body["command"], what))
            kw["env"] = _env(cx, body["env"], what) if "env" in body else ()
            kw["sandbox"] = _sandbox(cx, body["sandbox"], what) if "sandbox" in body else Sandbox()
            if kw["sandbox"].enabled and kw["sandbox"].network == "egress" and not egress:
                cx.fail(
                    body["sandbox"],
                    f"`sandbox.network: egress` of {what} needs `egress` (where it may go)",
                )
            if "credential" in body:
                cx.fail(
                    body["credential"],
                    "`credential` applies to an mcp adapter with `url` (stdio servers take secrets in `env`)",
                )
        else:
            kw["url"] = _url_under(cx, body["url"], f"`url` of {what}", egress)
            for key in ("env", "sandbox"):
                if key in body:
                    cx.fail(
                        body[key],
                        f"`{key}` applies to an mcp adapter with `command` (a process Gatehouse starts)",
                    )
    if "credential" in body:
        kw["credential"] = _credential(cx, body["credential"], name, what)
    if "rate_limit" in body:
        kw["rate_limit"] = _rate_limit(cx, body["rate_limit"], what)
    actions: dict[str, Action] = {}
    if "actions" in body and not (isinstance(body["actions"], ScalarNode) and plain(body["actions"]) is None):
        mapping(cx, body["actions"], f"`actions` of {what}", None)
        for aknode, acnode in body["actions"].value:
            aname = plain(aknode)
            if not _NAME.fullmatch(aname):
                cx.fail(
                    aknode, f"bad action name `{aname}` of {what} (use letters, digits, `_`, `.` and `-`)"
                )
            actions[aname] = _action(cx, kind, aname, aknode, acnode, f"action `{aname}` of {what}")
    return Adapter(name=name, kind=kind, actions=actions, egress=egress, line=knode.start_mark.line + 1, **kw)


def _egress(cx: Ctx, node: Any, what: str) -> tuple[EgressEntry, ...]:
    items = str_list(cx, node, f"`egress` of {what}")
    out = []
    for i, item in enumerate(items):
        try:
            out.append(parse_egress(item))
        except EgressError as exc:
            cx.fail(item_node(node, i), str(exc))
    return tuple(out)


def _url_under(cx: Ctx, node: Any, what: str, egress: tuple[EgressEntry, ...]) -> str:
    url = string(cx, node, what)
    parts = split_url(url)
    if parts is None or any(c in url for c in "@ \r\n\t"):
        cx.fail(node, f"{what} must be an absolute http or https URL with no user part, got `{url}`")
    if not any(e.allows(*parts) for e in egress):
        listed = ", ".join(f"`{e.text}`" for e in egress) or "none"
        cx.fail(node, f"{what} `{url}` is not under the adapter's `egress` (entries: {listed})")
    return url


def _command(cx: Ctx, node: Any, what: str) -> list[str]:
    if not isinstance(node, SequenceNode):
        cx.fail(node, f"`command` of {what} must be a list of strings (the program and its arguments)")
    return str_list(cx, node, f"`command` of {what}", allow_numbers=True)


def _env(cx: Ctx, node: Any, what: str) -> tuple[EnvVar, ...]:
    out = []
    for key, vnode in mapping(cx, node, f"`env` of {what}", None).items():
        if not _ENV_NAME.fullmatch(key):
            cx.fail(vnode, f"bad environment variable name `{key}` in {what}")
        if isinstance(vnode, MappingNode):
            ref = mapping(cx, vnode, f"`env.{key}` of {what}", ("secret",))
            if "secret" not in ref:
                cx.fail(vnode, f"`env.{key}` of {what} is a value or `{{secret: <name>}}`")
            out.append(EnvVar(name=key, secret=_secret_name(cx, ref["secret"], f"`env.{key}.secret`")))
        else:
            out.append(
                EnvVar(name=key, value=string(cx, vnode, f"`env.{key}` of {what}", allow_numbers=True))
            )
    return tuple(out)


def _secret_name(cx: Ctx, node: Any, what: str) -> str:
    name = string(cx, node, what)
    if not _SECRET.fullmatch(name):
        cx.fail(node, f"bad secret name `{name}` in {what} (use letters, digits, `_`, `.` and `-`)")
    return name


def _credential(cx: Ctx, node: Any, adapter: str, what: str) -> Credential:
    body = mapping(cx, node, f"`credential` of {what}", _CREDENTIAL_KEYS)
    mint = boolean(cx, body["mint"], "`credential.mint`") if "mint" in body else False
    if mint == ("secret" in body):
        cx.fail(node, f"`credential` of {what} needs exactly one of `secret: <name>` and `mint: true`")
    header = string(cx, body["header"], "`credential.header`") if "header" in body else "Authorization"
    if not _HEADER.fullmatch(header):
        cx.fail(body["header"], f"bad header name `{header}` in `credential.header`")
    slot = "{token}" if mint else "{secret}"
    fmt = string(cx, body["format"], "`credential.format`") if "format" in body else f"Bearer {slot}"
    if slot not in fmt or any(c in fmt for c in "\r\n\0"):
        cx.fail(body.get("format", node), f"`credential.format` must hold `{slot}` and no line breaks")
    if not mint:
        for key in ("audience", "ttl"):
            if key in body:
                cx.fail(body[key], f"`credential.{key}` applies to a minted credential (`mint: true`)")
        return Credential(
            header=header, format=fmt, secret=_secret_name(cx, body["secret"], "`credential.secret`")
        )
    audience = string(cx, body["audience"], "`credential.audience`") if "audience" in body else adapter
    ttl = 10 * 60
    if "ttl" in body:
        raw = scalar(cx, body["ttl"], "`credential.ttl`")
        try:
            ttl = parse_duration(raw)
        except ValueError as exc:
            cx.fail(body["ttl"], str(exc))
        if not _TTL_MIN <= ttl <= _TTL_MAX:
            cx.fail(body["ttl"], f"`credential.ttl` must be 5 to 15 minutes, got `{raw}`")
    return Credential(header=header, format=fmt, mint=True, audience=audience, ttl=ttl)


def _rate_limit(cx: Ctx, node: Any, what: str) -> RateLimit:
    raw = scalar(cx, node, f"`rate_limit` of {what}")
    try:
        return parse_rate_limit(raw)
    except ValueError as exc:
        cx.fail(node, str(exc))


def _positive(cx: Ctx, node: Any, what: str) -> int:
    value = scalar(cx, node, what)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        cx.fail(node, f"{what} must be a whole number above 0, got `{value}`")
    return value


def read_sandbox(text: str, what: str) -> Sandbox:
    """A `sandbox:` given outside a bundle (YAML or JSON text, e.g. built from `gatehouse worker
    --isolate-*` flags), checked exactly as an adapter's; `PolicyError` says what is wrong."""
    return _sandbox(Ctx(), compose(text), what)


def _sandbox(cx: Ctx, node: Any, what: str) -> Sandbox:
    if isinstance(node, ScalarNode):
        if plain(node) != "none":
            cx.fail(node, f"`sandbox` of {what} is `none` or a mapping of {', '.join(_SANDBOX_KEYS)}")
        return Sandbox(enabled=False)
    body = mapping(cx, node, f"`sandbox` of {what}", _SANDBOX_KEYS)
    kw: dict[str, Any] = {}
    if "network" in body:
        kw["network"] = choice(cx, body["network"], "`sandbox.network`", ("none", "egress"))
    for key in ("read", "write"):
        if key in body:
            paths = str_list(cx, body[key], f"`sandbox.{key}`")
            for i, p in enumerate(paths):
                if not p.startswith("/"):
                    cx.fail(item_node(body[key], i), f"`sandbox.{key}` holds absolute host paths, got `{p}`")
                if p.rstrip("/") == "" or ".." in p.split("/") or "\0" in p:
                    cx.fail(item_node(body[key], i), f"`sandbox.{key}` cannot show `{p}` (the root, or `..`)")
            kw[key] = tuple(paths)
    if "memory" in body:
        raw = scalar(cx, body["memory"], "`sandbox.memory`")
        m = _SIZE.match(str(raw)) if not isinstance(raw, bool) else None
        if m is None or int(m.group(1)) <= 0:
            cx.fail(body["memory"], f"`sandbox.memory` is a size such as `512Mi`, got `{raw}`")
        kw["memory"] = int(m.group(1)) * _SIZE_UNITS[m.group(2).lower()]
    for key in ("cpu_seconds", "processes", "wall_seconds"):
        if key in body:
            kw[key] = _positive(cx, body[key], f"`sandbox.{key}`")
    return Sandbox(**kw)


def _node_at(node: Any, path: tuple[str | int, ...]) -> Any:
    """The deepest node along `path` inside a schema's node tree (for the error's line)."""
    for step in path:
        if isinstance(node, MappingNode):
            nxt = next((v for k, v in node.value if isinstance(k, ScalarNode) and plain(k) == step), None)
        elif isinstance(node, SequenceNode) and isinstance(step, int) and step < len(node.value):
            nxt = node.value[step]
        else:
            nxt = None
        if nxt is None:
            break
        node = nxt
    return node


def _action(cx: Ctx, kind: str, name: str, knode: Any, node: Any, what: str) -> Action:
    body: dict[str, Any] = {}
    if not (isinstance(node, ScalarNode) and plain(node) is None):  # `name:` alone: no settings
        body = mapping(cx, node, what, _ACTION_KEYS[kind])
    kw: dict[str, Any] = {}
    schema: Any = None
    if "params" in body:
        schema = plain(body["params"])
        try:
            kw["validator"] = compile_params_schema(schema)
        except SchemaProblem as exc:
            cx.fail(_node_at(body["params"], exc.path), f"`params` of {what}: {exc.message}")
        kw["params"] = schema
    if "effect" in body:
        kw["effect"] = choice(cx, body["effect"], f"effect of {what}", EFFECTS)
    if "output" in body:
        kw["output"] = choice(cx, body["output"], f"output of {what}", OUTPUT_TRUST)
    if kind == "http":
        for need in ("method", "path"):
            if need not in body:
                cx.fail(knode, f"{what} needs `{need}` (the broker makes the call)")
        method = string(cx, body["method"], f"method of {what}").upper()
        if method not in HTTP_METHODS:
            cx.fail(
                body["method"], f"bad method `{method}` of {what} (expected one of {', '.join(HTTP_METHODS)})"
            )
        kw["method"] = method
        kw["path"], kw["path_params"] = _path(cx, body["path"], schema, what)
        if "body" in body:
            b = choice(cx, body["body"], f"body of {what}", ("params", "none"))
            kw["body"] = None if b == "none" else b
    return Action(name=name, line=knode.start_mark.line + 1, **kw)


def _path(cx: Ctx, node: Any, schema: Any, what: str) -> tuple[str, tuple[str, ...]]:
    path = string(cx, node, f"path of {what}")
    if not path.startswith("/") or any(c in path for c in " \r\n\t#?") or "//" in path:
        cx.fail(
            node, f"path of {what} must start with `/` and hold no spaces, `?`, `#` or `//`, got `{path}`"
        )
    if _PATH_PARAM.sub("", path).count("{") or _PATH_PARAM.sub("", path).count("}"):
        cx.fail(node, f"path of {what} has an unbalanced `{{` or `}}`: `{path}`")
    names = tuple(_PATH_PARAM.findall(path))
    props = schema.get("properties", {}) if isinstance(schema, dict) else {}
    required = schema.get("required", []) if isinstance(schema, dict) else []
    for n in names:
        if not _PARAM_NAME.fullmatch(n):
            cx.fail(node, f"bad path parameter `{{{n}}}` in the path of {what}")
        if not isinstance(props, dict) or n not in props:
            cx.fail(
                node,
                f"path parameter `{{{n}}}` of {what} is not declared in its `params` schema's `properties`",
            )
        if not isinstance(required, list) or n not in required:
            cx.fail(
                node, f"path parameter `{{{n}}}` of {what} must be listed in its `params` schema's `required`"
            )
    return path, names

"""Line-numbered YAML node readers: validate a document node by node, naming the line at fault.

`compose(text)` parses YAML (or JSON, which is YAML for our purposes) into a node tree without
building Python values; the readers (`mapping`, `string`, `str_list`, `choice`, ...) each check
one node and return its value, or call `Ctx.fail`, which raises `PolicyError` with the node's
line and the id of the rule being read. Nothing is built until the caller has read the whole
document, so a broken one never half-loads.

The policy loader reads bundles with these; the broker's parameter schemas are meant to as well.
This is the only module of the pure core that imports `yaml` (the loader's edge).
"""

from __future__ import annotations

from typing import Any, NoReturn

import yaml
from yaml import MappingNode, Node, ScalarNode, SequenceNode

from gatehouse.errors import PolicyError

__all__ = [
    "Ctx",
    "MappingNode",
    "Node",
    "ScalarNode",
    "SequenceNode",
    "as_sequence",
    "boolean",
    "choice",
    "compose",
    "item_node",
    "list_nodes",
    "mapping",
    "plain",
    "scalar",
    "str_list",
    "string",
]

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_scalar_constructor = yaml.constructor.SafeConstructor()


class Ctx:
    """Where we are in the document, for error messages: `fail` names the line and the rule."""

    __slots__ = ("rule_id",)

    def __init__(self) -> None:
        self.rule_id: str | None = None

    def fail(self, node: Any, message: str) -> NoReturn:
        line = node.start_mark.line + 1 if node is not None else None
        raise PolicyError(message, line=line, rule_id=self.rule_id)


def compose(text: str) -> Node:
    """The node tree of `text`; `PolicyError` with the line for text that is not YAML or JSON."""
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise PolicyError(f"not valid YAML or JSON: {exc.problem or exc}", line=line) from None
    except yaml.YAMLError as exc:
        raise PolicyError(f"not valid YAML or JSON: {exc}") from None
    if node is None:
        raise PolicyError("the policy is empty")
    return node


def plain(node: Any) -> Any:
    """The Python value of a node (mappings and lists recursively)."""
    if isinstance(node, MappingNode):
        return {plain(k): plain(v) for k, v in node.value}
    if isinstance(node, SequenceNode):
        return [plain(v) for v in node.value]
    value = _scalar_constructor.construct_object(node)
    # The shared constructor memoises every node it builds; forget it, or each load leaks.
    _scalar_constructor.constructed_objects.pop(node, None)
    return value


def mapping(cx: Ctx, node: Any, what: str, allowed: tuple[str, ...] | None) -> dict[str, Any]:
    """A mapping with string keys, no duplicates and (given `allowed`) no unknown keys: key ->
    value node."""
    if not isinstance(node, MappingNode):
        cx.fail(node, f"{what} must be a mapping")
    out: dict[str, Any] = {}
    for knode, vnode in node.value:
        key = plain(knode) if isinstance(knode, ScalarNode) else None
        if not isinstance(key, str):
            cx.fail(knode, f"{what} keys must be strings")
        if key in out:
            cx.fail(knode, f"duplicate key `{key}` in {what}")
        if allowed is not None and key not in allowed:
            cx.fail(knode, f"unknown key `{key}` in {what} (expected one of {', '.join(allowed)})")
        out[key] = vnode
    return out


def scalar(cx: Ctx, node: Any, what: str) -> Any:
    if not isinstance(node, ScalarNode):
        cx.fail(node, f"{what} must be a scalar")
    return plain(node)


def string(cx: Ctx, node: Any, what: str, *, allow_numbers: bool = False) -> str:
    """A string (a number too, as its text, with `allow_numbers`)."""
    value = scalar(cx, node, what)
    if allow_numbers and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        hint = " (quote it)" if isinstance(value, bool | int | float) or value is None else ""
        cx.fail(node, f"{what} must be a string, got `{value}`{hint}")
    return value


def str_list(cx: Ctx, node: Any, what: str, *, allow_numbers: bool = False) -> list[str]:
    """A non-empty list of strings; a single string is accepted as a list of one."""
    if isinstance(node, ScalarNode):
        return [string(cx, node, what, allow_numbers=allow_numbers)]
    if not isinstance(node, SequenceNode):
        cx.fail(node, f"{what} must be a list of strings")
    if not node.value:
        cx.fail(node, f"{what} must not be empty (omit it to match anything)")
    return [string(cx, item, f"each item of {what}", allow_numbers=allow_numbers) for item in node.value]


def boolean(cx: Ctx, node: Any, what: str) -> bool:
    value = scalar(cx, node, what)
    if not isinstance(value, bool):
        cx.fail(node, f"{what} must be true or false, got `{value}`")
    return value


def choice(cx: Ctx, node: Any, what: str, choices: tuple[str, ...]) -> str:
    value = scalar(cx, node, what)
    if value not in choices:
        cx.fail(node, f"bad {what} `{value}` (expected one of {', '.join(choices)})")
    return str(value)


def item_node(node: Any, i: int) -> Any:
    """The node of item `i` of a list (or the node itself for a one-string shorthand)."""
    return node.value[i] if isinstance(node, SequenceNode) else node


def list_nodes(cx: Ctx, node: Any, what: str) -> list[Any]:
    """The item nodes of a list."""
    if not isinstance(node, SequenceNode):
        cx.fail(node, f"{what} must be a list")
    return list(node.value)


def as_sequence(node: Any) -> Any:
    """A list node as it is; any other node as a list of one (`condition: {...}`)."""
    if isinstance(node, SequenceNode):
        return node
    return SequenceNode("tag:yaml.org,2002:seq", [node], node.start_mark, node.end_mark)

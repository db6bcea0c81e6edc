"""`detected` and `detections` of a step: which output detectors fire on its params' strings.

The detectors live in `gatehouse.output`, which imports `gatehouse.policy`; so the policy does not
import them back (that would be a circle on one floor). The caller, above both (the step gate),
passes a scan function: `scan(text) -> names of the detectors that fire on it`, e.g. over
`gatehouse.output.ALL_DETECTORS`:

    scan = lambda s: [d.name for d in ALL_DETECTORS if d.spans(s)]
    found = detections_of(params, scan)
    ctx["detections"], ctx["detected"] = found, detected(found)

`detections` maps the path of each string of the params (`params.to`, `params.body.html`; the
items of a list under the list's path) to the names that fired there, which `detects:
{params.x: [...]}` reads; `detected` is the sorted union over all params.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["detected", "detections_of"]

_MAX_DEPTH = 32


def detections_of(
    params: Any, scan: Callable[[str], Iterable[str]], *, root: str = "params"
) -> dict[str, frozenset[str]]:
    """path -> detector names that fire on the strings at that path (paths with none left out)."""
    out: dict[str, set[str]] = {}
    stack: list[tuple[Any, str, int]] = [(params, root, 0)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, str):
            names = set(scan(value))
            if names:
                out.setdefault(path, set()).update(names)
        elif depth < _MAX_DEPTH:
            if isinstance(value, Mapping):
                stack.extend((v, f"{path}.{k}", depth + 1) for k, v in value.items() if isinstance(k, str))
            elif isinstance(value, list | tuple):
                stack.extend((v, path, depth + 1) for v in value)
    return {path: frozenset(names) for path, names in out.items()}


def detected(found: Mapping[str, Iterable[str]]) -> list[str]:
    """The context field `detected`: every detector that fired anywhere in the params."""
    return sorted({name for names in found.values() for name in names})

"""An adapter action's params turned into the outbound request, and its answer turned into the
output an agent may see, with every credential value scrubbed out.

    request = build_request(adapter, action, params, credential=("Authorization", "Bearer ..."))
    output  = decode_output(fetched.headers, fetched.content, Scrubber([secret, header value]))

The request: `base_url` + the action's `path` with each `{name}` filled from the params,
URL-encoded whole (a `/` never survives as one); `body: params` sends the params not used in the
path as a JSON body, otherwise they go to the query string. Refused before anything is sent
(`BadRequest`, 422 at the edge):

- a path param that could walk the path (`path_traversal`): `.` or `..`, or any `/` or `\\`,
  checked before encoding, since a target that decodes `%2F` would otherwise walk it anyway;
- a path param that is not a string or number, or is empty (`invalid_path_param`);
- CR, LF or NUL in a path param or in a header value (`header_injection`): a request line or
  header split in two is a second request the egress check never saw. A header value must be
  visible ASCII otherwise (`invalid_header_value`): httpx would refuse it with the value in
  its message.

No message here quotes a header value: it holds a credential.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from gatehouse.errors import BadRequest
from gatehouse.policy.catalog import Action, Adapter

__all__ = ["REDACTED", "Scrubber", "build_request", "check_header_value", "decode_output", "fill_path"]

REDACTED = "[REDACTED]"
USER_AGENT = "gatehouse-broker"
_SPLITTERS = ("\r", "\n", "\x00")
_TEXT_TYPES = ("text/", "json", "xml", "javascript", "x-www-form-urlencoded", "yaml", "csv")


def _path_value(name: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise BadRequest(
            f"path parameter `{name}` must be a string or a number", code="invalid_path_param",
            details={"param": name},
        )  # fmt: skip
    text = str(value)
    if not text:
        raise BadRequest(f"path parameter `{name}` is empty", code="invalid_path_param",
                         details={"param": name})  # fmt: skip
    if any(c in text for c in _SPLITTERS):
        raise BadRequest(
            f"path parameter `{name}` holds a CR, LF or NUL character", code="header_injection",
            details={"param": name},
        )  # fmt: skip
    if text in (".", "..") or "/" in text or "\\" in text:
        raise BadRequest(
            f"path parameter `{name}` would change the path (`/`, `\\`, `.` or `..`)", code="path_traversal",
            details={"param": name},
        )  # fmt: skip
    return quote(text, safe="")


def fill_path(path: str, names: Iterable[str], params: Mapping[str, Any]) -> str:
    """`path` with each `{name}` replaced by its param, URL-encoded."""
    for name in names:
        if name not in params:
            raise BadRequest(f"path parameter `{name}` is missing", code="invalid_path_param",
                             details={"param": name})  # fmt: skip
        path = path.replace("{" + name + "}", _path_value(name, params[name]))
    return path


def check_header_value(header: str, value: str) -> None:
    """Refuse a header value that would split the request or that httpx cannot encode."""
    if any(c in value for c in _SPLITTERS):
        raise BadRequest(
            f"the value for header `{header}` holds a CR, LF or NUL character", code="header_injection",
            details={"header": header},
        )  # fmt: skip
    if any(not (" " <= c <= "~" or c == "\t") for c in value):
        raise BadRequest(
            f"the value for header `{header}` is not printable ASCII", code="invalid_header_value",
            details={"header": header},
        )  # fmt: skip


def _query_value(value: Any) -> str | list[str]:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, str | int | float | bool) for v in value):
        return [str(_query_value(v)) for v in value]
    return orjson.dumps(value).decode()  # objects and mixed lists: as JSON text


def build_request(
    adapter: Adapter,
    action: Action,
    params: Mapping[str, Any],
    *,
    credential: tuple[str, str] | None = None,
) -> httpx.Request:
    """The request for `adapter:action` with `params`; `credential` the (header, value) to inject."""
    base = (adapter.base_url or "").rstrip("/")
    path = action.path or "/"
    if not path.startswith("/"):
        path = "/" + path
    url = base + fill_path(path, action.path_params, params)
    rest = {k: v for k, v in params.items() if k not in action.path_params}
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json, */*;q=0.5"}
    if credential is not None:
        check_header_value(*credential)
        headers[credential[0]] = credential[1]
    method = action.method or "GET"
    if action.body == "params":
        return httpx.Request(method, url, headers={**headers, "Content-Type": "application/json"},
                             content=orjson.dumps(rest))  # fmt: skip
    query = {k: _query_value(v) for k, v in rest.items()}
    return httpx.Request(method, url, headers=headers, params=query or None)


class Scrubber:
    """Removes credential values (a secret, a rendered header, a minted token) from what the
    broker passes on: an upstream that echoes the request back must not hand it to the agent."""

    def __init__(self, values: Iterable[str]) -> None:
        found: set[str] = set()
        for v in values:
            if v:
                found.add(v)
                # As it reads inside a JSON string: a secret with `"` or `\` is escaped there.
                escaped = orjson.dumps(v).decode()[1:-1]
                if escaped != v:
                    found.add(escaped)
        # Longest first, so a value that holds another is removed whole.
        self.values = tuple(sorted(found, key=len, reverse=True))
        self._raw = tuple(v.encode("utf-8") for v in self.values)

    def __bool__(self) -> bool:
        return bool(self.values)

    def __repr__(self) -> str:
        return f"Scrubber(<{len(self.values)} values hidden>)"

    def bytes(self, data: bytes) -> bytes:
        for raw in self._raw:
            if raw in data:
                data = data.replace(raw, REDACTED.encode())
        return data

    def text(self, text: str) -> str:
        for v in self.values:
            if v in text:
                text = text.replace(v, REDACTED)
        return text

    def value(self, value: Any) -> Any:
        """`value` with every string in it (keys too) scrubbed."""
        if not self.values:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v) for v in value]
        return value


def decode_output(headers: httpx.Headers, content: bytes, scrub: Scrubber) -> Any:
    """The answer's body as the step's output: JSON parsed, text as text, anything else as
    `{content_type, base64}`; every credential value scrubbed, before and after decoding (a
    JSON `\\u` escape can spell a secret the raw bytes do not show)."""
    content = scrub.bytes(content)
    ctype = headers.get("content-type", "").lower()
    if not content:
        return None
    if "json" in ctype:
        try:
            return scrub.value(orjson.loads(content))
        except orjson.JSONDecodeError:
            pass
    if not ctype or any(t in ctype for t in _TEXT_TYPES):
        try:
            return scrub.text(content.decode(_charset(ctype)))
        except (UnicodeDecodeError, LookupError):
            if ctype:
                return scrub.text(content.decode("utf-8", errors="replace"))
    return {"content_type": ctype or None, "base64": base64.b64encode(content).decode("ascii")}


def _charset(ctype: str) -> str:
    for part in ctype.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key == "charset" and value:
            return value.strip('"')
    return "utf-8"

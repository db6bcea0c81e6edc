"""Topic globs.

A topic is a dot-separated name such as `job.deploy.apply`. In a pattern, `*` matches any run
of characters inside one segment (never a dot) and `**` matches any run of characters including
dots. Everything else is literal.

Patterns are classified once so the compiler can index them: an *exact* pattern goes into a
hash map, and a wildcard pattern hangs in a segment trie under its literal prefix, tagged with
the shape of its tail (`prefix.*`, `prefix.**` or anything else, which falls back to a regex).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

__all__ = ["GlobError", "TopicGlob", "compile_glob", "is_valid_topic"]

# A glob segment: literal characters from the topic alphabet mixed with `*`.
_SEGMENT = re.compile(r"^[A-Za-z0-9_\-*]+$")
_TOPIC_SEGMENT = re.compile(r"^[A-Za-z0-9_-]+$")

Kind = Literal["exact", "star", "dstar", "regex"]


class GlobError(ValueError):
    """A topic pattern is malformed (reported by the loader with its line number)."""


@dataclass(frozen=True, slots=True)
class TopicGlob:
    pattern: str
    kind: Kind
    # Literal leading segments, used as the trie path.
    prefix: tuple[str, ...]
    regex: re.Pattern[str]

    def matches(self, topic: str) -> bool:
        return self.regex.fullmatch(topic) is not None


def is_valid_topic(topic: str) -> bool:
    """True when `topic` is one or more dot-separated segments of `[A-Za-z0-9_-]`."""
    # fullmatch, not match: `$` would also accept a trailing newline.
    return bool(topic) and all(_TOPIC_SEGMENT.fullmatch(s) for s in topic.split("."))


def _to_regex(pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^.]*")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    # DOTALL: `**` matches any character, as the index (which never looks inside) assumes.
    return re.compile("".join(out), re.DOTALL)


@lru_cache(maxsize=65536)
def compile_glob(pattern: str) -> TopicGlob:
    """Validate and classify `pattern`; raises `GlobError` with a human message."""
    if not isinstance(pattern, str) or not pattern:
        raise GlobError("topic pattern must be a non-empty string")
    if "***" in pattern:
        raise GlobError(f"bad glob `{pattern}`: `***` is not a wildcard (use `*` or `**`)")
    segments = pattern.split(".")
    for seg in segments:
        if not seg:
            raise GlobError(f"bad glob `{pattern}`: empty segment")
        if not _SEGMENT.fullmatch(seg):
            raise GlobError(
                f"bad glob `{pattern}`: segment `{seg}` may hold only letters, digits, "
                "`_`, `-` and the wildcards `*` and `**`"
            )
    prefix: list[str] = []
    for seg in segments:
        if "*" in seg:
            break
        prefix.append(seg)
    rest = segments[len(prefix) :]
    kind: Kind
    if not rest:
        kind = "exact"
    elif rest == ["*"]:
        kind = "star"
    elif rest == ["**"]:
        kind = "dstar"
    else:
        kind = "regex"
    return TopicGlob(pattern=pattern, kind=kind, prefix=tuple(prefix), regex=_to_regex(pattern))

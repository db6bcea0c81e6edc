"""Topic globs.

A topic is a dot-separated name such as `job.deploy.apply`. In a pattern, `*` matches any run
of characters inside one segment (never a dot) and `**` matches any run of characters including
dots. Everything else is literal.

Patterns are classified once so the compiler can index them: an *exact* pattern goes into a
hash map, and a wildcard pattern hangs in a segment trie under its literal prefix, tagged with
the shape of its tail (`prefix.*`, `prefix.**` or anything else, which falls back to a regex).

Step targets (`adapter:<adapter>:<action>`, DESIGN.md section 9) are globbed the same way with
`:` as the separator: `*` matches any run of characters inside one `:`-segment and `**` any run
at all. A dot is an ordinary character in a target (MCP tool names may hold dots), so
`adapter:github:*` matches `adapter:github:repos.list`. A target pattern without `**` has exactly
three segments and its first one matches `adapter`: `github:list_*` (the identity scope form)
is an error rather than a rule that silently never fires.

Capability globs use the topic rules, except that a lone `*` (or `**`) means any capability at
all, as it does in an identity's `capabilities`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

__all__ = [
    "GlobError",
    "TopicGlob",
    "capability_glob",
    "compile_glob",
    "compile_target",
    "is_valid_topic",
]

# A glob segment: literal characters from the topic alphabet mixed with `*`.
_SEGMENT = re.compile(r"^[A-Za-z0-9_\-*]+$")
_TOPIC_SEGMENT = re.compile(r"^[A-Za-z0-9_-]+$")
# A target segment may also hold dots (the separator is `:`).
_TARGET_SEGMENT = re.compile(r"^[A-Za-z0-9_.\-*]+$")

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


def _to_regex(pattern: str, sep: str = ".") -> re.Pattern[str]:
    one_segment = f"[^{re.escape(sep)}]*"
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append(one_segment)
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    # DOTALL: `**` matches any character, as the index (which never looks inside) assumes.
    return re.compile("".join(out), re.DOTALL)


@lru_cache(maxsize=65536)
def compile_glob(pattern: str) -> TopicGlob:
    """Validate and classify `pattern`; raises `GlobError` with a human message."""
    segments = _segments(pattern, "topic pattern", "glob", ".", _SEGMENT, "`_`, `-`")
    return _classify(pattern, segments, ".")


def _classify(pattern: str, segments: list[str], sep: str) -> TopicGlob:
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
    return TopicGlob(pattern=pattern, kind=kind, prefix=tuple(prefix), regex=_to_regex(pattern, sep))


@lru_cache(maxsize=65536)
def compile_target(pattern: str) -> TopicGlob:
    """Validate and classify a step target pattern (segments split on `:`)."""
    segments = _segments(pattern, "target pattern", "target", ":", _TARGET_SEGMENT, "`_`, `-`, `.`")
    if "**" not in pattern and (len(segments) != 3 or not _to_regex(segments[0], ":").fullmatch("adapter")):
        raise GlobError(f"bad target `{pattern}`: expected `adapter:<adapter>:<action>`")
    return _classify(pattern, segments, ":")


def _segments(
    pattern: str, kind: str, name: str, sep: str, segment: re.Pattern[str], allowed: str
) -> list[str]:
    """`pattern` split on `sep`, every segment checked (topics and targets share the rules)."""
    if not isinstance(pattern, str) or not pattern:
        raise GlobError(f"{kind} must be a non-empty string")
    if "***" in pattern:
        raise GlobError(f"bad {name} `{pattern}`: `***` is not a wildcard (use `*` or `**`)")
    segments = pattern.split(sep)
    for seg in segments:
        if not seg:
            raise GlobError(f"bad {name} `{pattern}`: empty segment")
        if not segment.fullmatch(seg):
            raise GlobError(
                f"bad {name} `{pattern}`: segment `{seg}` may hold only letters, digits, "
                f"{allowed} and the wildcards `*` and `**`"
            )
    return segments


@lru_cache(maxsize=4096)
def capability_glob(pattern: str) -> re.Pattern[str] | None:
    """The regex of a capability pattern with a wildcard, or None for an exact capability.

    Raises `GlobError` for a malformed glob. A lone `*` or `**` matches any capability.
    """
    if "*" not in pattern:
        return None
    if pattern in ("*", "**"):
        return re.compile(".*", re.DOTALL)
    return compile_glob(pattern).regex

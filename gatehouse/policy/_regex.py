"""RE2 patterns for `matches` (DESIGN.md section 9): linear time, so a parameter cannot stall the
kernel. The only module of the policy package that imports `re2` (google-re2).

`compile_re2` is memoised: the loader compiles a pattern to validate it and the compiler reuses
that object, so each pattern is compiled once per process.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import re2

__all__ = ["RegexError", "compile_re2", "re2_found"]


class RegexError(ValueError):
    """RE2 cannot compile the pattern (the loader names its line)."""


@lru_cache(maxsize=65536)
def compile_re2(pattern: str) -> Any:
    """The compiled RE2 pattern; `RegexError` with RE2's message when it does not compile."""
    options = re2.Options()
    options.log_errors = False  # the error is the loader's to report, not stderr's
    try:
        return re2.compile(pattern, options=options)
    except (re2.error, TypeError, ValueError) as exc:
        detail = exc.args[0] if exc.args else exc
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        raise RegexError(f"bad regex `{pattern}`: {detail}") from None


# `search` of the Python wrapper maps byte offsets back to characters and builds a match object
# (~25 us a call here); a yes/no answer needs neither, so ask the compiled RE2 object directly
# (~5 us) when this build of the wrapper has it, and `search` otherwise.
_UNANCHORED = getattr(getattr(re2, "_Anchor", None), "UNANCHORED", None)
_NO_SPAN = getattr(re2, "_NULL_SPAN", None)


def re2_found(pattern: str, text: str) -> bool:
    """Whether the RE2 `pattern` occurs anywhere in `text` (a search, unanchored)."""
    compiled = compile_re2(pattern)
    raw = getattr(compiled, "_regexp", None)
    if raw is None or _UNANCHORED is None or _NO_SPAN is None:
        return compiled.search(text) is not None
    data = text.encode("utf-8", "surrogatepass")
    return bool(raw.Match(_UNANCHORED, data, 0, len(data))[0] != _NO_SPAN)

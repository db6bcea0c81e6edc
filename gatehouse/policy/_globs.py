"""Set relations between two globs, for `lint`: may they match a common string, and does one
match every string the other does.

A glob is a list of tokens: a literal character, `*` (any run of characters other than the
separator) or `**` (any run at all). Both answers err on the safe side for lint, which only
claims what it can prove: `intersects` is exact (a walk of the product of the two automata,
whose wildcard loops can always agree on some character), and `contains` is sound but may miss a
containment that needs reasoning across several tokens (then lint claims nothing).
"""

from __future__ import annotations

import re
from functools import cache, lru_cache

__all__ = ["contains", "intersects"]

_STAR = "\x00*"
_DSTAR = "\x00**"
Token = str


@lru_cache(maxsize=65536)
def _tokens(pattern: str) -> tuple[Token, ...]:
    out: list[Token] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(_DSTAR)
            i += 2
        elif pattern[i] == "*":
            out.append(_STAR)
            i += 1
        else:
            out.append(pattern[i])
            i += 1
    return tuple(out)


@lru_cache(maxsize=65536)
def _regex(pattern: str, sep: str) -> re.Pattern[str]:
    one = f"[^{re.escape(sep)}]*"
    out = [".*" if t == _DSTAR else one if t == _STAR else re.escape(t) for t in _tokens(pattern)]
    return re.compile("".join(out), re.DOTALL)


def _loop(t: Token) -> bool:
    return t in (_STAR, _DSTAR)


def _accepts(loop: Token, char: Token, sep: str) -> bool:
    """Whether the wildcard `loop` may consume the literal `char`."""
    return loop == _DSTAR or char != sep


@lru_cache(maxsize=65536)
def intersects(p: str, q: str, sep: str) -> bool:
    """True when some string matches both globs `p` and `q` (segments split on `sep`)."""
    # Fast answers first: a literal against a glob is one regex match, and two globs whose
    # literal heads (or tails) differ share nothing.
    if "*" not in p or "*" not in q:
        lit, pat = (p, q) if "*" not in p else (q, p)
        return _regex(pat, sep).fullmatch(lit) is not None
    hp, hq = p.split("*", 1)[0], q.split("*", 1)[0]
    n = min(len(hp), len(hq))
    if hp[:n] != hq[:n]:
        return False
    tp, tq = p.rsplit("*", 1)[1], q.rsplit("*", 1)[1]
    n = min(len(tp), len(tq))
    if n and tp[-n:] != tq[-n:]:
        return False
    a, b = _tokens(p), _tokens(q)
    seen: set[tuple[int, int]] = set()
    todo = [(0, 0)]
    while todo:
        i, j = todo.pop()
        if (i, j) in seen:
            continue
        seen.add((i, j))
        if i == len(a) and j == len(b):
            return True
        nxt: list[tuple[int, int]] = []
        if i < len(a) and _loop(a[i]):
            nxt.append((i + 1, j))  # the wildcard matches nothing more
        if j < len(b) and _loop(b[j]):
            nxt.append((i, j + 1))
        if i < len(a) and j < len(b):
            x, y = a[i], b[j]
            if not _loop(x) and not _loop(y):
                if x == y:
                    nxt.append((i + 1, j + 1))
            elif _loop(x) and not _loop(y):
                if _accepts(x, y, sep):
                    nxt.append((i, j + 1))
            elif _loop(y) and not _loop(x) and _accepts(y, x, sep):
                nxt.append((i + 1, j))
        todo.extend(nxt)
    return False


@lru_cache(maxsize=65536)
def contains(outer: str, inner: str, sep: str) -> bool:
    """True when every string `inner` matches, `outer` matches too (sound; see the docstring)."""
    q, p = _tokens(outer), _tokens(inner)

    @cache
    def walk(i: int, j: int) -> bool:
        # i: position in `inner`, j: position in `outer`.
        if j == len(q):
            return i == len(p)
        t = q[j]
        if t == _DSTAR:
            return walk(i, j + 1) or (i < len(p) and walk(i + 1, j))
        if t == _STAR:
            if walk(i, j + 1):
                return True
            return i < len(p) and p[i] != _DSTAR and p[i] != sep and walk(i + 1, j)
        return i < len(p) and p[i] == t and walk(i + 1, j + 1)

    return walk(0, 0)

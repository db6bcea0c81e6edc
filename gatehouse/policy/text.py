"""How step rules read strings (DESIGN.md section 9): folding, hosts of addresses, provenance text.

- `fold(s)`: NFKC, then case folding. `eq`, `in`, sets, domains, `contains` and `from_*`
  compare folded strings, so `Eve@Evil.com` is `eve@evil.com` and a full-width `evil` (U+FF45...) is `evil`.
- `host_of(value)`: the host a value names: the URL's host for a value with a scheme
  (`https://user@h:443/p` -> `h`), else what follows the last `@` of an e-mail address, else the
  host of a scheme-less `h:port` / `www.h.com/path` / `h.com/path`, else the value itself.
- `under(host, domain)`: the host is the domain or a name under it (`a.corp.com` under `corp.com`,
  `evilcorp.com` not).
- `provenance_text(s)`: what `from_untrusted` / `from_prompt` compare: folded, line continuations (a
  backslash before a line break) removed, every run of white space one space.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["fold", "host_of", "provenance_text", "under"]

_SCHEME = re.compile(r"^[a-z][a-z0-9+.\-]*://", re.IGNORECASE)
# Where the authority of a URL (or a scheme-less address) ends. A backslash ends it too: browsers
# read `https://evil.com\@corp.com` as the host `evil.com`.
_AUTHORITY_END = re.compile(r"[/?#\\\s]")
# What a host name may hold once folded; anything else ends it (`eve@evil.com>` -> `evil.com`).
_HOST = re.compile(r"[^\W_]([\w.\-]*[^\W_])?|\[[0-9a-f:.]+\]")
_CONTINUATION = re.compile(r"\\\r?\n")
_SPACES = re.compile(r"\s+")


def fold(s: str) -> str:
    """NFKC, then case folding (ASCII takes the short way: the same answer, cheaper)."""
    if s.isascii():
        return s.lower()
    return unicodedata.normalize("NFKC", s).casefold()


def host_of(value: str) -> str:
    """The folded host `value` names, or "" when it names none (see the module docstring)."""
    v = fold(value).strip()
    m = _SCHEME.match(v)
    if m is not None:
        authority = _AUTHORITY_END.split(v[m.end() :], 1)[0]
        authority = authority.rpartition("@")[2]  # user:password@ is not the host
    elif "@" in v:
        authority = _AUTHORITY_END.split(v.rpartition("@")[2], 1)[0]
    else:
        authority = _AUTHORITY_END.split(v, 1)[0]
    h = _HOST.match(authority)
    if h is None:
        return ""
    return h.group(0).rstrip(".")


def under(host: str, domain: str) -> bool:
    """`host` is `domain` or a name under it (both folded)."""
    return host == domain or (host.endswith(domain) and host[-len(domain) - 1] == ".")


def provenance_text(s: str) -> str:
    """The form `from_untrusted` and `from_prompt` compare: tools wrap and escape long text."""
    return _SPACES.sub(" ", _CONTINUATION.sub("", fold(s)))

"""`Pattern`: one named, validated, compiled row of the classifier table.

A pattern either sets a label (`label`/`value`, e.g. `command_class: destructive`), adds a risk
tag, or both. Each carries `examples` it must match and `counter_examples` it must not, so that the
table documents itself and a test can prove every row (and refuse a row without examples).

Regexes are compiled once, with `re.MULTILINE` always (so `$` means end of line, the end of one
shell or SQL statement) and `re.IGNORECASE` unless `ignore_case` is false. `raw` patterns look at
the text as sent; all others at `clean_text(text)`, so invisible characters and fullwidth letters
cannot split a phrase.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gatehouse.errors import BadRequest
from gatehouse.ingress.prefilter import Prefilter, fold
from gatehouse.ingress.text import clean_text

__all__ = ["COMMAND_CLASS", "COMMAND_CLASSES", "Pattern"]

COMMAND_CLASS = "command_class"

# Most severe first. `none` is what a prompt gets when no command pattern matches at all.
COMMAND_CLASSES: tuple[str, ...] = ("destructive", "write", "read", "none")

_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
_STR_KEYS = ("name", "regex", "description")
_OPTIONAL_STR_KEYS = ("label", "value", "risk_tag")
_TUPLE_KEYS = ("examples", "counter_examples")
_BOOL_KEYS = ("ignore_case", "raw", "sensitive")
_KEYS = frozenset((*_STR_KEYS, *_OPTIONAL_STR_KEYS, *_TUPLE_KEYS, *_BOOL_KEYS))


def _bad(name: object, message: str) -> BadRequest:
    where = f"classifier pattern `{name}`" if isinstance(name, str) else "classifier pattern"
    return BadRequest(
        f"{where}: {message}",
        code="bad_classifier_pattern",
        details={"pattern": name if isinstance(name, str) else None},
    )


@dataclass(frozen=True)
class Pattern:
    """A named regex and what a match means.

    `sensitive` patterns match secrets; their hit excerpts are masked so that a classifier hit
    never copies a credential into a decision record or the audit log.
    """

    name: str
    regex: str
    label: str | None = None
    value: str | None = None
    risk_tag: str | None = None
    description: str = ""
    examples: tuple[str, ...] = ()
    counter_examples: tuple[str, ...] = ()
    ignore_case: bool = True
    raw: bool = False
    sensitive: bool = False
    compiled: re.Pattern[str] = field(init=False, repr=False, compare=False)
    # What every match must contain (see prefilter.py); None = always run the regex.
    prefilter: Prefilter | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise _bad(self.name, "name must match `[a-z0-9][a-z0-9._-]*`")
        if (self.label is None) != (self.value is None):
            raise _bad(self.name, "`label` and `value` go together")
        if self.label is None and self.risk_tag is None:
            raise _bad(self.name, "a pattern must set a `label` or a `risk_tag`")
        if self.label is not None and not self.label.strip():
            raise _bad(self.name, "`label` must not be empty")
        if self.label == COMMAND_CLASS and self.value not in COMMAND_CLASSES[:-1]:
            raise _bad(
                self.name,
                f"`command_class` must be one of destructive, write, read, not `{self.value}`",
            )
        if self.risk_tag is not None and not _NAME.fullmatch(self.risk_tag):
            raise _bad(self.name, f"risk tag `{self.risk_tag}` must match `[a-z0-9][a-z0-9._-]*`")
        flags = re.MULTILINE | (re.IGNORECASE if self.ignore_case else 0)
        try:
            compiled = re.compile(self.regex, flags)
        except re.error as exc:
            raise _bad(self.name, f"bad regex: {exc}") from None
        if compiled.search("") is not None:
            # It would match every prompt, including the empty one.
            raise _bad(self.name, "regex matches the empty string")
        object.__setattr__(self, "compiled", compiled)
        object.__setattr__(self, "prefilter", Prefilter.of(self.regex, flags))
        object.__setattr__(self, "examples", tuple(self.examples))
        object.__setattr__(self, "counter_examples", tuple(self.counter_examples))

    def search(self, raw: str, clean: str | None = None) -> re.Match[str] | None:
        """First match in the text this pattern looks at (`raw`, or `clean` = clean_text(raw))."""
        text = raw if self.raw else clean_text(raw) if clean is None else clean
        if self.prefilter is not None and not self.prefilter.passes(text, fold(text)):
            return None
        return self.compiled.search(text)

    def example_problems(self) -> tuple[str, ...]:
        """Examples that do not match and counter-examples that do; empty when all is well."""
        problems = [f"example `{ex}` does not match" for ex in self.examples if self.search(ex) is None]
        problems += [
            f"counter-example `{ex}` matches" for ex in self.counter_examples if self.search(ex) is not None
        ]
        return tuple(problems)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Pattern:
        """Build a pattern from config or a policy bundle, rejecting anything malformed.

        Besides the field checks of the constructor, the pattern's own examples must match and
        its counter-examples must not: a bundle author finds a broken regex at load time.
        """
        if not isinstance(data, Mapping):
            raise _bad(None, "each pattern must be a mapping")
        name = data.get("name")
        unknown = sorted(str(k) for k in data if k not in _KEYS)
        if unknown:
            raise _bad(name, f"unknown key `{unknown[0]}`")
        for key in ("name", "regex"):
            if key not in data:
                raise _bad(name, f"missing key `{key}`")
        kwargs: dict[str, Any] = {}
        for key, raw_value in data.items():
            kwargs[key] = _coerce(name, key, raw_value)
        pattern = cls(**kwargs)
        problems = pattern.example_problems()
        if problems:
            raise _bad(name, problems[0])
        return pattern


def _coerce(name: object, key: str, value: Any) -> Any:
    if key in _STR_KEYS:
        if not isinstance(value, str):
            raise _bad(name, f"`{key}` must be a string")
        return value
    if key in _OPTIONAL_STR_KEYS:
        if value is not None and not isinstance(value, str):
            raise _bad(name, f"`{key}` must be a string")
        return value
    if key in _BOOL_KEYS:
        if not isinstance(value, bool):
            raise _bad(name, f"`{key}` must be true or false")
        return value
    # examples / counter_examples
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise _bad(name, f"`{key}` must be a list of strings")
    return tuple(value)

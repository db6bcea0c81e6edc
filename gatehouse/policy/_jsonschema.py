"""JSON Schema for the adapter catalog's `params`: checked against the metaschema, compiled once.

The only module of the policy package that imports `jsonschema` (the maintained reference
validator). Not `jsonschema-rs`, which would likely be faster: a validation here costs tens to
hundreds of microseconds (~150 us for `examples/policies/adapters.yaml`'s `send_money`, measured
on a shared 2-core machine at load 7; jsonschema-rs not yet measured beside it), small beside a
step's store write, and the pure-Python library lets us swap the keywords that run regular
expressions for RE2 ones and map a schema error back to its YAML line by its path.

Why swap them: `pattern`, `patternProperties` and `additionalProperties` (which consults the
patterns) run Python's backtracking `re` over the *agent's* strings, so a pattern such as
`(a+)+$` in a schema would let a parameter stall the gate. Here they run RE2 (linear time), as
`matches` does in rules; a pattern RE2 cannot compile is a load error.

Error messages never quote the parameter's value: a deny reason is stored in the decision log
and the audit log, where params appear as their schema only. They name the JSON path, the
keyword and the schema's side (`$.amount: must be at most 100`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import jsonschema
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError
from jsonschema.validators import extend, validator_for

from gatehouse.policy._regex import RegexError, compile_re2, re2_found

__all__ = ["ParamsValidator", "SchemaProblem", "compile_params_schema"]


class SchemaProblem(ValueError):
    """A params schema is not valid: `path` is the list of keys inside the schema at fault."""

    def __init__(self, message: str, path: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.path = path


def _search(pattern: str, text: str) -> bool:
    return re2_found(pattern, text)


def _pattern(validator: Any, patrn: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _search(patrn, instance):
        yield ValidationError(f"does not match `{patrn}`")


def _pattern_properties(validator: Any, pp: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for patrn, subschema in pp.items():
        for k, v in instance.items():
            if _search(patrn, k):
                yield from validator.descend(v, subschema, path=k, schema_path=patrn)


def _extras(instance: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    properties = schema.get("properties", {})
    patterns = tuple(schema.get("patternProperties", {}))
    return [k for k in instance if k not in properties and not any(_search(p, k) for p in patterns)]


def _additional_properties(validator: Any, ap: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    extras = _extras(instance, schema)
    if validator.is_type(ap, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], ap, path=extra)
    elif not ap and extras:
        names = ", ".join(f"`{e}`" for e in sorted(extras))
        yield ValidationError(f"unexpected {'property' if len(extras) == 1 else 'properties'} {names}")


_RE2_KEYWORDS = {
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
}
_EXTENDED: dict[type[Any], type[Any]] = {}


def _with_re2(cls: type[Any]) -> type[Any]:
    out = _EXTENDED.get(cls)
    if out is None:
        keywords = {k: v for k, v in _RE2_KEYWORDS.items() if k in cls.VALIDATORS}
        out = _EXTENDED[cls] = extend(cls, keywords)
    return out


def _walk(node: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], str, Any]]:
    """(path, key, value) of every mapping entry in a schema, depth first."""
    if isinstance(node, Mapping):
        for k, v in node.items():
            yield path, k, v
            yield from _walk(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, (*path, i))


def _check_extras(schema: Any) -> None:
    """What the metaschema allows but the gate does not: remote references (the gate fetches
    nothing) and patterns RE2 cannot run."""
    keys = {(key, path) for path, key, _ in _walk(schema)}
    patterned = [p for k, p in keys if k == "patternProperties"]
    unevaluated = [p for k, p in keys if k == "unevaluatedProperties"]
    if patterned and unevaluated:
        # `unevaluatedProperties` re-reads `patternProperties` with Python's backtracking `re`.
        raise SchemaProblem(
            "`unevaluatedProperties` cannot be combined with `patternProperties` (use "
            "`additionalProperties`)",
            (*unevaluated[0], "unevaluatedProperties"),
        )
    for path, key, value in _walk(schema):
        if key in ("$ref", "$dynamicRef") and isinstance(value, str) and not value.startswith("#"):
            raise SchemaProblem(
                f"`{key}` must point inside the schema (`#/...`), not at `{value}`", (*path, key)
            )
        if key == "pattern" and isinstance(value, str):
            _re2(value, (*path, key))
        if key == "patternProperties" and isinstance(value, Mapping):
            for p in value:
                _re2(p, (*path, key, p))


def _re2(pattern: str, path: tuple[str | int, ...]) -> None:
    try:
        compile_re2(pattern)
    except RegexError as exc:
        raise SchemaProblem(f"{exc} (RE2 syntax)", path) from None


class ParamsValidator:
    """A params schema compiled once; `first_error` answers per call."""

    __slots__ = ("_validator", "schema")

    def __init__(self, schema: Mapping[str, Any], validator: Any) -> None:
        self.schema = schema
        self._validator = validator

    def first_error(self, params: Any) -> str | None:
        """The first violation as `` `$.path`: what is wrong`` (never the value), or None."""
        error = next(iter(self._validator.iter_errors(params)), None)
        return None if error is None else describe(error)


def compile_params_schema(schema: Any) -> ParamsValidator:
    """Check `schema` against its metaschema (draft 2020-12 unless `$schema` names another) and
    compile it; `SchemaProblem` names the place in the schema at fault."""
    if not isinstance(schema, Mapping | bool):
        raise SchemaProblem("a params schema must be a JSON Schema object")
    try:
        cls = validator_for(schema, default=Draft202012Validator)
    except jsonschema.exceptions.UnknownType as exc:  # pragma: no cover - validator_for does not raise it
        raise SchemaProblem(str(exc)) from None
    if isinstance(schema, Mapping) and "$schema" in schema and cls is Draft202012Validator:
        known = schema["$schema"]
        if str(known).rstrip("#") not in (
            "https://json-schema.org/draft/2020-12/schema",
            "http://json-schema.org/draft/2020-12/schema",
        ):
            raise SchemaProblem(f"unknown `$schema` `{known}`", ("$schema",))
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        where = "".join(f"/{p}" for p in exc.path) or "/"
        raise SchemaProblem(f"not a valid JSON Schema at `{where}`: {_short(exc)}", tuple(exc.path)) from None
    _check_extras(schema)
    return ParamsValidator(schema if isinstance(schema, Mapping) else {}, _with_re2(cls)(schema))


def _short(exc: SchemaError) -> str:
    # The metaschema's message names the offending schema value (the bundle author's own text).
    message = str(exc.message)
    return message if len(message) <= 200 else message[:200] + "..."


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, Mapping) else type(value).__name__


def _values(v: Any) -> str:
    items = v if isinstance(v, list) else [v]
    return ", ".join(f"`{x}`" for x in items)


# keyword -> what the value must be, from the schema's side only.
_TEMPLATES: dict[str, str] = {
    "minimum": "must be at least {v}",
    "maximum": "must be at most {v}",
    "exclusiveMinimum": "must be greater than {v}",
    "exclusiveMaximum": "must be less than {v}",
    "multipleOf": "must be a multiple of {v}",
    "minLength": "must be at least {v} characters long",
    "maxLength": "must be at most {v} characters long",
    "minItems": "must have at least {v} items",
    "maxItems": "must have at most {v} items",
    "uniqueItems": "must not repeat items",
    "minProperties": "must have at least {v} properties",
    "maxProperties": "must have at most {v} properties",
    "format": "must be a `{v}`",
    "not": "must not match the schema under `not`",
    "anyOf": "must match one of the schemas under `anyOf`",
    "oneOf": "must match exactly one of the schemas under `oneOf`",
    "contains": "must contain an item matching `contains`",
    "minContains": "must contain at least {v} items matching `contains`",
    "maxContains": "must contain at most {v} items matching `contains`",
    "dependentRequired": "is missing a property that another one requires",
    "propertyNames": "has a property name that is not allowed",
    "unevaluatedProperties": "has properties that are not allowed",
    "unevaluatedItems": "has items that are not allowed",
    "items": "has items that are not allowed",
    "prefixItems": "has items that are not allowed",
    "false": "is not allowed",
}


def describe(error: ValidationError) -> str:
    """`error` as one line that names the path and the rule, never the parameter's value."""
    where = error.json_path
    kw = str(error.validator)
    v = error.validator_value
    if kw == "type":
        types = " or ".join(v) if isinstance(v, list) else v
        return f"`{where}`: must be of type {types}, got {_kind(error.instance)}"
    if kw == "required":
        missing = [r for r in v if isinstance(error.instance, Mapping) and r not in error.instance]
        noun = "property" if len(missing) == 1 else "properties"
        return f"`{where}`: missing required {noun} {_values(missing)}"
    if kw == "enum":
        return f"`{where}`: must be one of {_values(v)}"
    if kw == "const":
        return f"`{where}`: must be `{v}`"
    if kw in ("pattern", "additionalProperties"):
        return f"`{where}`: {error.message}"
    if kw in _TEMPLATES:
        return f"`{where}`: {_TEMPLATES[kw].format(v=v)}"
    if error.validator is None or v is False:  # a `false` schema
        return f"`{where}`: {_TEMPLATES['false']}"
    return f"`{where}`: fails `{kw}`"

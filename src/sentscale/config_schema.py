"""A config that fails the workflow's schema, said readably: every problem on one line (key
path, value, expectation), unknown keys first with their close match (difflib), never the
schema itself. Snakemake's ``validate`` prints jsonschema's single best match followed by the
whole schema (hundreds of lines), and reads a misspelt required key as a missing one."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

#: At most this many schema problems are listed (the rest are counted).
MAX_SCHEMA_PROBLEMS = 12


def schema_error(config: Mapping[str, Any], schema_file: str | Path) -> ConfigError | None:
    """The error to show in place of Snakemake's failed ``validate(config, schema_file)``:
    every problem on one line (:func:`schema_problems`). Snakemake's own message is jsonschema's
    single best match followed by the whole schema (hundreds of lines), and it reads a misspelt
    required key as a missing one. None: the schema finds nothing (the failure was another)."""
    schema = yaml.safe_load(Path(schema_file).read_text(encoding="utf-8"))
    problems = schema_problems(config, schema)
    if not problems:
        return None
    extra = len(problems) - MAX_SCHEMA_PROBLEMS
    shown = problems[:MAX_SCHEMA_PROBLEMS] + ([f"... and {extra} more"] if extra > 0 else [])
    return ConfigError("invalid study configuration:\n  - " + "\n  - ".join(shown))


def schema_problems(config: Any, schema: Mapping[str, Any]) -> list[str]:
    """Every way ``config`` breaks ``schema``, one line each: unknown keys first (with their
    close match), then missing keys, then ``<key path>: got <value>; expected <what>``."""
    from jsonschema import Draft202012Validator

    unknown: list[tuple[tuple, str, list[str]]] = []
    missing: list[tuple[tuple, str]] = []
    other: list[str] = []
    for error in Draft202012Validator(schema).iter_errors(config):
        _sort_schema_error(error, unknown, missing, other)
    lines, misspelt = [], set()
    for path, key, allowed in unknown:
        close = difflib.get_close_matches(key, allowed, n=1)
        if close:
            misspelt.add((path, close[0]))
            lines.append(f"unknown key {key!r} in {_key(path)} (did you mean {close[0]!r}?)")
        else:
            lines.append(f"unknown key {key!r} in {_key(path)}; allowed: {', '.join(allowed)}")
    # a required key that is only misspelt is reported once, as the unknown key
    lines += [
        f"missing key {key!r} in {_key(path)}"
        for path, key in missing
        if (path, key) not in misspelt
    ]
    return list(dict.fromkeys(lines + other))


def _sort_schema_error(error: Any, unknown: list, missing: list, other: list) -> None:
    """File one jsonschema ValidationError under unknown keys, missing keys or the rest."""
    path = tuple(error.absolute_path)
    if error.validator == "additionalProperties" and error.validator_value is False:
        allowed = list(error.schema.get("properties", {}))
        unknown += [(path, key, allowed) for key in error.instance if key not in allowed]
    elif error.validator == "enum" and "propertyNames" in error.relative_schema_path:
        # `propertyNames: {enum: [...]}` (finetune.models.<model>): the instance is the key
        unknown.append((path, error.instance, [str(v) for v in error.validator_value]))
    elif error.validator == "required":
        missing += [(path, key) for key in error.validator_value if key not in error.instance]
    elif error.validator in ("oneOf", "anyOf") and error.context:
        # the branches whose type fits the value are the ones that say what is wrong with it
        inner = [e for e in error.context if e.validator != "type" or len(e.path) > 0]
        for sub in inner:
            _sort_schema_error(sub, unknown, missing, other)
        if not inner:
            other.append(_wrong_value(path, error))
    else:
        other.append(_wrong_value(path, error))


def _wrong_value(path: tuple, error: Any) -> str:
    """``embed.batch_size: got 0; expected an integer >= 1``: the whole subschema of the key
    says what is expected (jsonschema's message names one keyword and repeats the value)."""
    return f"{_key(path)}: got {_show(error.instance)}; expected {_expected(error.schema)}"


def _key(path: tuple) -> str:
    """``embed.batch_size``, ``tasks[1]``; the empty path is the config itself."""
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
    return text or "the config"


def _show(value: Any, width: int = 60) -> str:
    """A config value as YAML writes scalars (null, true), shortened."""
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = str(value).lower()
    else:
        text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


#: How the schema's types read in a message.
_TYPE_WORDS = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
    "null": "null",
}
_PLURALS = {"integer": "integers", "number": "numbers", "string": "strings", "object": "mappings"}
_BOUNDS = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}


def _expected(schema: Mapping[str, Any]) -> str:
    """What a (sub)schema accepts, in words: 'an integer >= 1 or null', "one of 'a', 'b'"."""
    if "enum" in schema:
        return "one of " + ", ".join(_show(v) for v in schema["enum"])
    if "const" in schema:
        return _show(schema["const"])
    for combined in ("oneOf", "anyOf"):
        if combined in schema:
            return " or ".join(_expected(branch) for branch in schema[combined])
    types = schema.get("type", [])
    words = []
    for kind in [types] if isinstance(types, str) else types:
        word = _TYPE_WORDS.get(kind, kind)
        if kind in ("integer", "number"):
            word += "".join(f" {op} {schema[k]}" for k, op in _BOUNDS.items() if k in schema)
        elif kind == "string" and "pattern" in schema:
            word += f" matching {schema['pattern']}"
        elif kind == "array":
            item_type = (schema.get("items") or {}).get("type")
            if item_type in _PLURALS:
                word += f" of {_PLURALS[item_type]}"
            notes = []
            if schema.get("minItems"):
                n = schema["minItems"]
                notes.append(f"at least {n} item{'s' if n > 1 else ''}")
            if schema.get("uniqueItems"):
                notes.append("unique")
            word += f" ({', '.join(notes)})" if notes else ""
        elif kind == "object" and schema.get("minProperties"):
            n = schema["minProperties"]
            word += f" with at least {n} entr{'ies' if n > 1 else 'y'}"
        words.append(word)
    return " or ".join(words) or "a value the schema allows"

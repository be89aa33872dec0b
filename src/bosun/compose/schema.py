"""Validation against the Compose Specification's own JSON schema (vendored in ``schema/``
with its licence), with errors worded as Compose words them and the line they are on."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import yaml

from bosun.compose.errors import ComposeError

if TYPE_CHECKING:
    import jsonschema
    from jsonschema.exceptions import ValidationError

_TYPE_WORDS = {"array": "list", "object": "mapping", "integer": "integer", "number": "number",
               "string": "string", "boolean": "boolean", "null": "null"}


@cache
def _validator() -> jsonschema.Draft7Validator:
    # jsonschema (with referencing and attrs) is a tenth of a second to import: only a
    # compose file pays for it, not every `bosun service` command that imports the translation.
    import jsonschema

    text = resources.files("bosun.compose").joinpath("schema/compose-spec.json").read_text()
    schema = json.loads(text)
    return jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)


def _path(parts: list[Any]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(root)"


def _words(e: ValidationError) -> str:
    where = _path(list(e.absolute_path))
    if e.validator == "additionalProperties":
        extra = sorted(set(e.instance) - set(e.schema.get("properties") or {}))
        extra = [k for k in extra if not str(k).startswith("x-")]
        return f"{where} additional properties {', '.join(repr(k) for k in extra)} not allowed"
    if e.validator == "type":
        wanted = e.validator_value if isinstance(e.validator_value, list) else [e.validator_value]
        return f"{where} must be a {' or '.join(_TYPE_WORDS.get(str(w), str(w)) for w in wanted)}"
    if e.validator == "enum":
        return f"{where} must be one of the following: {', '.join(repr(v) for v in e.validator_value)}"
    if e.validator == "required":
        return f"{where} {e.message}"
    return f"{where}: {e.message}"


def _line(text: str, parts: list[Any]) -> int | None:
    """The 1-based line of the node at ``parts`` (the deepest one that exists)."""
    try:
        node: Any = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    line = None
    for part in parts:
        if isinstance(node, yaml.MappingNode):
            hit = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if hit is None:
                break
            line, node = hit[0].start_mark.line + 1, hit[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def validate(model: Any, filename: str, text: str) -> None:
    """Raise :class:`ComposeError` with the schema's best message for the first problem."""
    from jsonschema.exceptions import best_match

    err = best_match(_validator().iter_errors(model))
    if err is None:
        return
    parts = list(err.absolute_path)
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        known = set(err.schema.get("properties") or {})
        extra = [k for k in err.instance if k not in known and not str(k).startswith("x-")]
        parts = [*parts, *extra[:1]]
    line = _line(text, parts) if text else None
    where = f"{filename}:{line}" if line else filename
    raise ComposeError(f"validating {where}: {_words(err)}")

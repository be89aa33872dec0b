"""YAML text as the alerting configuration and rule files read it: a document that cannot
be parsed is one line saying where (line and column) and what went wrong, the way every
other refusal of theirs reads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml


def load_yaml(text: str, error: Callable[[str], Exception]) -> Any:
    """The document in ``text`` (``{}`` when it is blank); a malformed one raises
    ``error("invalid YAML at line L, column C: problem")``."""
    try:
        return yaml.safe_load(text) if text.strip() else {}
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise error(f"invalid YAML{at}: {e.problem or type(e).__name__}") from None
    except yaml.YAMLError as e:
        raise error(f"invalid YAML: {' '.join(str(e).split())}") from None

"""Output in kubectl's shapes: aligned tables, YAML, JSON, ``kind/name`` lines, ages.

Scripts and people compare Bosun's output with kubectl's, so the spacing rules are the
same: upper-case headers, each column as wide as its widest cell plus three spaces (at
least six), nothing trailing after the last column.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import click
import yaml

from bosun.api.durations import human_duration

PADDING = 3
MIN_WIDTH = 6

_Dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def age(timestamp: Any) -> str:
    t = parse_time(timestamp)
    if t is None:
        return "<unknown>"
    return human_duration((dt.datetime.now(dt.UTC) - t).total_seconds())


def cell_text(value: Any, column: dict[str, Any] | None = None) -> str:
    if value is None:
        return "<none>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if column and (column.get("type") == "date" or column.get("format") == "date"):
        return age(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


class TableWriter:
    """Aligned columns whose widths only grow, so ``get -w`` rows line up with the header."""

    def __init__(self) -> None:
        self.widths: list[int] = []

    def fit(self, rows: list[list[str]]) -> None:
        for row in rows:
            for i, cell in enumerate(row):
                w = max(len(cell) + PADDING, MIN_WIDTH)
                if i >= len(self.widths):
                    self.widths.append(w)
                elif w > self.widths[i]:
                    self.widths[i] = w

    def format(self, row: list[str]) -> str:
        parts = [cell.ljust(self.widths[i]) if i < len(row) - 1 else cell for i, cell in enumerate(row)]
        return "".join(parts)

    def lines(self, rows: list[list[str]]) -> list[str]:
        self.fit(rows)
        return [self.format(r) for r in rows]


def render(rows: list[list[str]]) -> str:
    return "\n".join(TableWriter().lines(rows))


def to_yaml(obj: Any) -> str:
    return str(yaml.dump(obj, Dumper=_Dumper, default_flow_style=False, sort_keys=True, allow_unicode=True))


def to_json(obj: Any) -> str:
    return json.dumps(obj, indent=4, ensure_ascii=False)


def as_list(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}}


def echo_objects(objs: list[dict[str, Any]], output: str, single: bool) -> None:
    body: Any = objs[0] if single and len(objs) == 1 else as_list(objs)
    click.echo(to_yaml(body) if output == "yaml" else to_json(body), nl=output != "yaml")

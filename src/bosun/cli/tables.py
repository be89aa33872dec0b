"""Fetch server-side Tables (``Accept: ...;as=Table``) and turn them into printable rows.

The server knows each kind's columns (kubectl's printers live server-side since 1.11), so
the CLI asks for a Table and only lays it out. A server or kind that answers with plain
objects still prints, with kubectl's default NAME/AGE columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bosun.api.kinds import Kind
from bosun.cli.common import TABLE_ACCEPT, kind_group
from bosun.cli.printers import age, cell_text
from bosun.client.rest import Client, resource_path

JSON = dict[str, Any]

_DEFAULT_COLUMNS: list[JSON] = [
    {"name": "Name", "type": "string", "format": "name", "priority": 0},
    {"name": "Age", "type": "string", "priority": 0},
]


@dataclass(slots=True)
class Table:
    columns: list[JSON]
    rows: list[JSON] = field(default_factory=list)
    resource_version: str = ""


def _synthetic(objs: list[JSON]) -> list[JSON]:
    rows: list[JSON] = []
    for o in objs:
        meta = o.get("metadata") or {}
        rows.append({"cells": [meta.get("name", ""), age(meta.get("creationTimestamp"))],
                     "object": {"metadata": meta}})
    return rows


def _table_from(body: JSON) -> Table:
    if body.get("kind") == "Table":
        return Table(
            list(body.get("columnDefinitions") or []),
            list(body.get("rows") or []),
            str((body.get("metadata") or {}).get("resourceVersion") or ""),
        )
    if "items" in body:
        return Table(list(_DEFAULT_COLUMNS), _synthetic(list(body.get("items") or [])),
                     str((body.get("metadata") or {}).get("resourceVersion") or ""))
    return Table(list(_DEFAULT_COLUMNS), _synthetic([body]))


async def fetch_table(
    client: Client,
    res: Kind,
    namespace: str | None,
    name: str | None = None,
    *,
    label_selector: str | None = None,
    field_selector: str | None = None,
) -> Table:
    """One object's or a whole (paged) list's table."""
    path = resource_path(res, namespace if res.namespaced else None, name)
    params: JSON = {"includeObject": "Metadata"}
    if name is None:
        params.update(labelSelector=label_selector, fieldSelector=field_selector, limit=500)
    table: Table | None = None
    while True:
        body = await client.request("GET", path, params=params, accept=TABLE_ACCEPT)
        page = _table_from(body)
        if table is None:
            table = page
        else:
            table.rows.extend(page.rows)
        cont = (body.get("metadata") or {}).get("continue") if name is None else None
        if not cont:
            return table
        params["continue"] = cont


def name_column(columns: list[JSON]) -> int:
    for i, c in enumerate(columns):
        if c.get("format") == "name":
            return i
    for i, c in enumerate(columns):
        if str(c.get("name", "")).lower() == "name":
            return i
    return 0


def row_meta(row: JSON) -> JSON:
    return ((row.get("object") or {}).get("metadata")) or {}


@dataclass(slots=True)
class Layout:
    """Which columns to show and how: wide, a NAMESPACE column, ``kind/`` name prefixes."""

    wide: bool = False
    with_namespace: bool = False
    prefix_kind: bool = False

    def visible(self, columns: list[JSON]) -> list[int]:
        return [i for i, c in enumerate(columns) if self.wide or int(c.get("priority") or 0) == 0]

    def header(self, res: Kind, columns: list[JSON]) -> list[str]:
        head = [str(columns[i].get("name", "")).upper() for i in self.visible(columns)]
        if self.with_namespace and res.namespaced:
            head.insert(0, "NAMESPACE")
        return head

    def cells(self, res: Kind, columns: list[JSON], row: JSON) -> list[str]:
        raw = list(row.get("cells") or [])
        name_at = name_column(columns)
        out: list[str] = []
        for i in self.visible(columns):
            text = cell_text(raw[i] if i < len(raw) else None, columns[i])
            if self.prefix_kind and i == name_at:
                text = f"{kind_group(res)}/{text}"
            out.append(text)
        if self.with_namespace and res.namespaced:
            out.insert(0, str(row_meta(row).get("namespace") or ""))
        return out

"""One served version of a custom resource: its strategy and what its registry row brings.

:class:`CustomVersion` is both the row's :class:`~bosun.api.strategy.Strategy` (status
reset, pruning and defaults, schema and CEL validation) and its
:class:`~bosun.api.registry.Custom` (unknown fields for ``fieldValidation``, the OpenAPI
schema, printer columns, scale paths), all read from the CustomResourceDefinition's version.
"""

from __future__ import annotations

import copy
import functools
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
from jsonpath_ng import JSONPath
from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
from jsonpath_ng.ext import parse as parse_jsonpath

from bosun.api.crd import cel, structural
from bosun.api.errors import FieldError
from bosun.api.strategy import Strategy
from bosun.api.tables.format import human_duration, parse_time
from bosun.api.validation.fields import Checker
from bosun.api.validation.meta import dns1123_subdomain, validate_object_meta

if TYPE_CHECKING:
    from bosun.api.registry import Resource
    from bosun.security.identity import User

Obj = dict[str, Any]

_NAME_COLUMN = {"name": "Name", "type": "string", "format": "name", "priority": 0,
                "description": "Name must be unique within a namespace. Is required when creating resources, "
                               "although some resources may allow a client to request the generation of an "
                               "appropriate name automatically. Name is primarily intended for creation "
                               "idempotence and configuration definition. Cannot be updated."}
_AGE_COLUMN = {"name": "Age", "type": "date", "format": "", "priority": 0,
               "description": "CreationTimestamp is a timestamp representing the server time when this "
                              "object was created."}


@functools.lru_cache(maxsize=1024)
def _path(expr: str) -> JSONPath | None:
    try:
        return parse_jsonpath("$" + expr if expr.startswith(".") else expr)
    except (JsonPathLexerError, JsonPathParserError, Exception):  # the library raises plain Exceptions too
        return None


def _column(col: Obj) -> Obj:
    out = {"name": col.get("name", ""), "type": col.get("type", "string"), "format": col.get("format", ""),
           "description": col.get("description", ""), "priority": int(col.get("priority") or 0)}
    return out


def _cell(value: Any, typ: str, now: datetime) -> Any:
    if value is None:
        return None
    if typ == "date":
        when = parse_time(value) if isinstance(value, str) else None
        return human_duration((now - when).total_seconds()) if when is not None else None
    if typ == "integer" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if typ == "number" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if typ == "boolean" and isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


class CustomVersion(Strategy):
    """The rules of one version (``schema``: its openAPIV3Schema; ``version``: the CRD's
    entry for it)."""

    def __init__(self, schema: Obj, version: Obj) -> None:
        super().__init__()
        self.schema = schema
        self.columns = [c for c in version.get("additionalPrinterColumns") or [] if isinstance(c, dict)]
        self.fields = frozenset(str(f["jsonPath"]).lstrip(".") for f in version.get("selectableFields") or []
                                if isinstance(f, dict) and isinstance(f.get("jsonPath"), str))
        scale = (version.get("subresources") or {}).get("scale") or {}
        self._scale = (str(scale.get("specReplicasPath") or ".spec.replicas"),
                       str(scale.get("statusReplicasPath") or ".status.replicas"),
                       str(scale.get("labelSelectorPath") or ""))

    @functools.cached_property
    def metered(self) -> bool:
        """Whether this version's rules are metered against the runtime cost budget (once)."""
        return cel.needs_metering(self.schema)

    # ---- Strategy ---------------------------------------------------------------------

    def prepare_for_create(self, res: Resource, obj: Obj, user: User | None = None) -> None:
        if "status" in res.subresources:
            obj.pop("status", None)  # set through the status subresource only

    def default(self, res: Resource, obj: Obj) -> None:
        super().default(res, obj)
        structural.prune(obj, self.schema)
        structural.default(obj, self.schema)
        structural.prune(obj, self.schema)  # a default may carry undeclared fields

    def validate(self, res: Resource, obj: Obj) -> list[FieldError]:
        c = Checker()
        validate_object_meta(c, obj, dns1123_subdomain, namespaced=res.namespaced)
        c.extend(structural.validate(obj, self.schema, "", cel.Rules(self.metered).check))
        return c.errors

    def bumps_generation(self, res: Resource, new: Obj, old: Obj) -> bool:
        """Any change but metadata's (and status', when it is a subresource), as Kubernetes
        counts a custom resource's generation: many keep their fields beside no spec."""
        skip = ("apiVersion", "metadata", "status") if "status" in res.subresources else ("apiVersion", "metadata")
        return {k: v for k, v in new.items() if k not in skip} != {k: v for k, v in old.items() if k not in skip}

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        """Transition rules (those naming ``oldSelf``): the others ran in :meth:`validate`."""
        return structural.validate(new, self.schema, "", cel.Rules(self.metered).check_transitions, old)

    # ---- Custom -----------------------------------------------------------------------

    def unknown_fields(self, obj: Obj) -> list[str]:
        return structural.prune(copy.deepcopy(obj), self.schema)

    def prune(self, obj: Obj) -> list[str]:
        return structural.prune(obj, self.schema)

    def openapi_schema(self) -> Obj:
        return copy.deepcopy(self.schema)

    def table_columns(self) -> list[Obj]:
        if not self.columns:
            return [dict(_NAME_COLUMN), dict(_AGE_COLUMN)]
        return [dict(_NAME_COLUMN), *(_column(c) for c in self.columns)]

    def table_cells(self, obj: Obj, now: datetime) -> list[Any]:
        name = (obj.get("metadata") or {}).get("name", "")
        if not self.columns:
            created = parse_time((obj.get("metadata") or {}).get("creationTimestamp") or "")
            return [name, human_duration((now - created).total_seconds()) if created is not None else "<unknown>"]
        cells: list[Any] = [name]
        for col in self.columns:
            path = _path(str(col.get("jsonPath") or ""))
            found = [m.value for m in path.find(obj)] if path is not None else []
            value = found[0] if len(found) == 1 else (",".join(str(v) for v in found) if found else None)
            cells.append(_cell(value, str(col.get("type") or "string"), now))
        return cells

    def selectable_fields(self) -> frozenset[str]:
        return self.fields

    def scale_paths(self) -> tuple[str, str, str]:
        return self._scale

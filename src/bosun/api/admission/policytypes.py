"""Type checking of a ValidatingAdmissionPolicy's expressions against the schemas of the
kinds it matches, for its ``status.typeChecking`` (upstream's type-checking controller).

A field path an expression reads from ``object`` or ``oldObject`` that a matched kind's schema
does not have is a warning, never a refusal, as upstream: ``{"fieldRef":
"spec.validations[0].expression", "warning": "apps/v1, Kind=Deployment: ERROR: <input>:1:12:
undefined field 'replicass'..."}``. The kinds are those the policy's ``matchConstraints``
name without wildcards, of the built-in kinds (custom resources are not checked); paths are
followed as :mod:`bosun.api.celrefs` reads them (not through indexes, maps or comprehension
variables), which is less than cel-go's checker finds.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bosun.api.celrefs import error_at, field_paths
from bosun.api.registry import Resource
from bosun.api.schema import OBJ, root_type
from bosun.api.target import Lookup

Obj = dict[str, Any]
_SECTIONS = (("validations", ("expression", "messageExpression")), ("matchConditions", ("expression",)),
             ("variables", ("expression",)), ("auditAnnotations", ("valueExpression",)))


def _expressions(spec: Obj) -> Iterator[tuple[str, str]]:
    for section, fields in _SECTIONS:
        for i, item in enumerate(spec.get(section) or ()):
            for field in fields:
                text = item.get(field) if isinstance(item, dict) else None
                if isinstance(text, str) and text:
                    yield f"spec.{section}[{i}].{field}", text


def _matched(spec: Obj, lookup: Lookup) -> list[Resource]:
    out: list[Resource] = []
    for rule in (spec.get("matchConstraints") or {}).get("resourceRules") or ():
        if not isinstance(rule, dict):
            continue
        for group in rule.get("apiGroups") or ():
            for version in rule.get("apiVersions") or ():
                for plural in rule.get("resources") or ():
                    if "*" in (group, version) or "*" in plural or "/" in plural:
                        continue  # upstream checks named kinds only
                    res = lookup.by_plural(str(group), str(version), str(plural))
                    if res is not None and res not in out:
                        out.append(res)
    return out


def _gvk(res: Resource) -> str:
    return f"{res.group}/{res.version}, Kind={res.kind}"


def type_warnings(spec: Obj, lookup: Lookup) -> list[Obj]:
    """``status.typeChecking.expressionWarnings`` of a policy's spec."""
    kinds = [(res, root) for res in _matched(spec, lookup) if (root := root_type(res)) is not None]
    if not kinds:
        return []
    out = []
    for field_ref, expression in _expressions(spec):
        paths = field_paths(expression, ("object", "oldObject"))
        found = []
        for res, root in kinds:
            issues = []
            for path in paths:
                struct: Any = root
                for name, offset in path.fields:
                    spec_ = struct.fields.get(name)
                    if spec_ is None:
                        issues.append(error_at(expression, offset, f"undefined field '{name}'"))
                        break
                    if spec_[0] != OBJ:
                        break  # a list, a map, a scalar: not followed
                    struct = spec_[1]
            if issues:
                found.append(f"{_gvk(res)}: " + "\n".join(issues))
        if found:
            out.append({"fieldRef": field_ref, "warning": "\n".join(found)})
    return out

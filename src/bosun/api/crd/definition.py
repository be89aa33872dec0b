"""Rules of the CustomResourceDefinition object itself (apiextensions' validation.go).

An invalid CRD is refused with Kubernetes' messages: bad names, versions without exactly one
storage version, a schema that is not structural (every field's ``type`` given, no
``properties`` beside ``additionalProperties``, nothing but name and generateName under
``metadata``), CEL rules that do not compile, scale paths outside ``.spec``/``.status``.
"""

from __future__ import annotations

import re
from typing import Any

from bosun.api import errors
from bosun.api.cellib import cost
from bosun.api.crd import structural
from bosun.api.crd.cel import compile_error, cost_error, rule_cost
from bosun.api.errors import FieldError
from bosun.api.validation.fields import Checker
from bosun.api.validation.meta import validate_object_meta

Obj = dict[str, Any]

_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_KIND = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
              "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used "
              "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
_1035_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
             "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
             "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
COLUMN_TYPES = ("integer", "number", "string", "boolean", "date")


def _d(v: Any) -> Obj:
    return v if isinstance(v, dict) else {}


def _l(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def default_definition(crd: Obj) -> None:
    """The defaults kube-apiserver fills into a v1 CRD."""
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        return
    names = spec.get("names")
    if isinstance(names, dict) and isinstance(names.get("kind"), str):
        names.setdefault("singular", names["kind"].lower())
        names.setdefault("listKind", names["kind"] + "List")
    conv = spec.setdefault("conversion", {"strategy": "None"})
    if isinstance(conv, dict):
        conv.setdefault("strategy", "None")
    for v in _l(spec.get("versions")):
        if isinstance(v, dict):
            v.setdefault("served", False)
            v.setdefault("storage", False)


def validate_definition(c: Checker, crd: Obj) -> None:
    validate_object_meta(c, crd, lambda name: [], namespaced=False)
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        c.errors.append(errors.required("spec"))
        return
    out = c.errors
    group = spec.get("group")
    names = _d(spec.get("names"))
    plural = names.get("plural")
    if not group:
        out.append(errors.required("spec.group"))
    elif not isinstance(group, str) or not _DNS1123_SUBDOMAIN.match(group) or "." not in group:
        out.append(errors.invalid("spec.group", group, "should be a domain with at least one dot"))
    name = _d(crd.get("metadata")).get("name")
    if plural and group and name != f"{plural}.{group}":
        out.append(errors.invalid("metadata.name", name, 'must be spec.names.plural+"."+spec.group'))
    scope = spec.get("scope")
    if scope not in ("Cluster", "Namespaced"):
        out.append(errors.not_supported("spec.scope", scope, ["Cluster", "Namespaced"])
                   if scope else errors.required("spec.scope"))
    _validate_names(names, out)
    strategy = _d(spec.get("conversion")).get("strategy", "None")
    if strategy != "None":
        out.append(errors.not_supported("spec.conversion.strategy", strategy, ["None"]))
    if spec.get("preserveUnknownFields") is True:
        out.append(errors.invalid("spec.preserveUnknownFields", True, "must be false in order to use defaults in "
                                  "the schema"))
    _validate_versions(spec, out)


def _validate_names(names: Obj, out: list[FieldError]) -> None:
    for key in ("plural", "singular"):
        v = names.get(key)
        if not v and key == "plural":
            out.append(errors.required("spec.names.plural"))
        elif v and (not isinstance(v, str) or not _DNS1123_LABEL.match(v)):
            out.append(errors.invalid(f"spec.names.{key}", v, _LABEL_MSG))
    for key in ("kind", "listKind"):
        v = names.get(key)
        if not v:
            out.append(errors.required(f"spec.names.{key}"))
        elif not isinstance(v, str) or not _KIND.match(v):
            out.append(errors.invalid(f"spec.names.{key}", v, _LABEL_MSG.replace("lowercase ", "")))
    if names.get("kind") and names.get("kind") == names.get("listKind"):
        out.append(errors.invalid("spec.names.listKind", names["listKind"], "kind and listKind may not be the same"))
    for key in ("shortNames", "categories"):
        for i, v in enumerate(_l(names.get(key))):
            if not isinstance(v, str) or not _DNS1123_LABEL.match(v):
                out.append(errors.invalid(f"spec.names.{key}[{i}]", v, _LABEL_MSG))


def _validate_versions(spec: Obj, out: list[FieldError]) -> None:
    versions = _l(spec.get("versions"))
    if not versions:
        out.append(errors.required("spec.versions", "must have exactly one version marked as storage version"))
        return
    storage = sum(1 for v in versions if isinstance(v, dict) and v.get("storage") is True)
    if storage != 1:
        out.append(FieldError("FieldValueInvalid", "spec.versions",
                              "must have exactly one version marked as storage version"))
    if not any(isinstance(v, dict) and v.get("served") is True for v in versions):
        out.append(FieldError("FieldValueInvalid", "spec.versions", "must have at least one served version"))
    seen: set[str] = set()
    for i, v in enumerate(versions):
        path = f"spec.versions[{i}]"
        if not isinstance(v, dict):
            out.append(errors.invalid(path, v, "must be an object"))
            continue
        name = v.get("name")
        if not name:
            out.append(errors.required(f"{path}.name"))
        elif not isinstance(name, str) or not _DNS1035.match(name):
            out.append(errors.invalid(f"{path}.name", name, _1035_MSG))
        elif name in seen:
            out.append(errors.duplicate(f"{path}.name", name))
        else:
            seen.add(name)
        schema = _d(v.get("schema")).get("openAPIV3Schema")
        if not isinstance(schema, dict):
            out.append(errors.required(f"{path}.schema.openAPIV3Schema", "schemas are required"))
        else:
            _structural_root(schema, f"{path}.schema.openAPIV3Schema", out)
        _validate_subresources(_d(v.get("subresources")), f"{path}.subresources", out)
        for j, sel in enumerate(_l(v.get("selectableFields"))):
            jp = _d(sel).get("jsonPath")
            if not jp:
                out.append(errors.required(f"{path}.selectableFields[{j}].jsonPath"))
            elif not isinstance(jp, str) or not jp.startswith("."):
                out.append(errors.invalid(f"{path}.selectableFields[{j}].jsonPath", jp, "must be a simple json path "
                                          "starting with ."))
        for j, col in enumerate(_l(v.get("additionalPrinterColumns"))):
            _validate_column(_d(col), f"{path}.additionalPrinterColumns[{j}]", out)


def _validate_subresources(subs: Obj, path: str, out: list[FieldError]) -> None:
    scale = subs.get("scale")
    if not isinstance(scale, dict):
        return
    for key, under in (("specReplicasPath", ".spec"), ("statusReplicasPath", ".status")):
        p = scale.get(key)
        if not p:
            out.append(errors.required(f"{path}.scale.{key}"))
        elif not isinstance(p, str) or not p.startswith(under + "."):
            out.append(errors.invalid(f"{path}.scale.{key}", p, f"should be a json path under {under}"))
    sel = scale.get("labelSelectorPath")
    if sel and (not isinstance(sel, str) or not sel.startswith((".spec.", ".status."))):
        out.append(errors.invalid(f"{path}.scale.labelSelectorPath", sel,
                                  "should be a json path under either .spec or .status"))


def _validate_column(col: Obj, path: str, out: list[FieldError]) -> None:
    if not col.get("name"):
        out.append(errors.required(f"{path}.name"))
    typ = col.get("type")
    if typ not in COLUMN_TYPES:
        out.append(errors.not_supported(f"{path}.type", typ, list(COLUMN_TYPES)) if typ
                   else errors.required(f"{path}.type"))
    jp = col.get("jsonPath")
    if not jp:
        out.append(errors.required(f"{path}.jsonPath"))


def _structural_root(schema: Obj, path: str, out: list[FieldError]) -> None:
    typ = schema.get("type")
    if not typ:
        out.append(errors.required(f"{path}.type", "must not be empty at the root"))
    elif typ != "object":
        out.append(errors.invalid(f"{path}.type", typ, "must be object at the root"))
    meta = _d(schema.get("properties")).get("metadata")
    if isinstance(meta, dict):
        extra = set(_d(meta.get("properties"))) - {"name", "generateName"}
        if extra or set(meta) - {"type", "properties", "description"}:
            out.append(errors.forbidden(f"{path}.properties[metadata]", "must not specify anything other than "
                                        "name and generateName, but metadata is implicitly specified"))
    spent: list[tuple[str, int]] = []
    _structural(schema, path, out, "root", 1, spent)
    if sum(c for _, c in spent) > cost.STATIC_CRD_LIMIT:
        for where, _ in spent:
            out.append(errors.forbidden(where, "contributed to estimated rule cost total exceeding cost limit for "
                                        "entire OpenAPIv3 schema"))
        out.append(errors.forbidden(path, cost_error("x-kubernetes-validations estimated rule cost total for entire "
                                                     "OpenAPIv3 schema", sum(c for _, c in spent),
                                                     cost.STATIC_CRD_LIMIT)))


def _structural(s: Obj, path: str, out: list[FieldError], where: str, cardinality: int,
                spent: list[tuple[str, int]]) -> None:
    """One node and those below it. ``where`` names what the node is (for messages);
    ``cardinality`` is how many values of the node one object can hold (its rules' cost is
    multiplied by it, as upstream), ``spent`` gathers each rule's cost."""
    int_or_string = s.get("x-kubernetes-int-or-string") is True
    preserve = s.get("x-kubernetes-preserve-unknown-fields")
    if preserve is not None and preserve is not True:
        out.append(errors.invalid(f"{path}.x-kubernetes-preserve-unknown-fields", preserve,
                                  "must be true or undefined"))
    if where != "root" and not s.get("type") and not int_or_string and preserve is not True:
        out.append(errors.required(f"{path}.type", f"must not be empty for specified {where}"))
    if int_or_string and s.get("type"):
        out.append(errors.invalid(f"{path}.type", s["type"], "must be empty to be structural"))
    props = s.get("properties")
    if isinstance(props, dict):
        if s.get("additionalProperties") not in (None, False):
            out.append(errors.forbidden(f"{path}.additionalProperties",
                                        "additionalProperties and properties are mutual exclusive"))
        for key, sub in props.items():
            if isinstance(sub, dict):
                _structural(sub, f"{path}.properties[{key}]", out, "object fields", cardinality, spent)
    extra = s.get("additionalProperties")
    if isinstance(extra, dict):
        _structural(extra, f"{path}.additionalProperties", out, "map values",
                    cardinality * cost.cardinality_factor(s), spent)
    items = s.get("items")
    if isinstance(items, dict):
        _structural(items, f"{path}.items", out, "array items", cardinality * cost.cardinality_factor(s), spent)
    elif s.get("type") == "array" and items is None:
        out.append(errors.required(f"{path}.items", "must be specified"))
    if "default" in s and where != "root":
        bad = structural.validate(s["default"], s, "default")
        if bad:
            out.append(errors.invalid(f"{path}.default", s["default"], bad[0].message))
    list_type = s.get("x-kubernetes-list-type")
    if list_type is not None and list_type not in ("atomic", "set", "map"):
        out.append(errors.not_supported(f"{path}.x-kubernetes-list-type", list_type, ["atomic", "set", "map"]))
    if list_type == "map" and not s.get("x-kubernetes-list-map-keys"):
        out.append(errors.required(f"{path}.x-kubernetes-list-map-keys",
                                   "must not be empty if x-kubernetes-list-type is map"))
    for key in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(_l(s.get(key))):
            if isinstance(sub, dict) and sub.get("type") and sub.get("type") != s.get("type"):
                out.append(errors.forbidden(f"{path}.{key}[{i}].type", "must be empty to be structural"))
    for i, rule in enumerate(_l(s.get("x-kubernetes-validations"))):
        text = _d(rule).get("rule")
        if not isinstance(text, str) or not text:
            out.append(errors.required(f"{path}.x-kubernetes-validations[{i}].rule"))
            continue
        why = compile_error(text)
        if why is not None:
            out.append(errors.invalid(f"{path}.x-kubernetes-validations[{i}].rule", text, why))
            continue
        _cost_rule(s, f"{path}.x-kubernetes-validations[{i}]", "rule", text, cardinality, out, spent)
        message = _d(rule).get("messageExpression")
        if isinstance(message, str) and message and compile_error(message) is None:
            _cost_rule(s, f"{path}.x-kubernetes-validations[{i}]", "messageExpression", message, cardinality, out,
                       spent)


def _cost_rule(s: Obj, path: str, what: str, text: str, cardinality: int, out: list[FieldError],
               spent: list[tuple[str, int]]) -> None:
    """Upstream's refusal of a rule (or message) whose estimated cost, times the node's
    cardinality, is over the per-expression limit."""
    try:
        estimated = rule_cost(text, s) * cardinality
    except ValueError:
        return  # the cost grammar lacks a form the interpreter takes: not estimated
    spent.append((f"{path}.{what}", estimated))
    if estimated > cost.STATIC_LIMIT:
        out.append(errors.forbidden(f"{path}.{what}", cost_error(f"estimated {what} cost", estimated,
                                                                 cost.STATIC_LIMIT)))


def validate_definition_update(new: Obj, old: Obj) -> list[FieldError]:
    out: list[FieldError] = []
    ns, os_ = _d(new.get("spec")), _d(old.get("spec"))
    for key in ("group", "scope"):
        if ns.get(key) != os_.get(key) and os_.get(key) is not None:
            out.append(errors.invalid(f"spec.{key}", ns.get(key), "field is immutable"))
    return out

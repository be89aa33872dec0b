"""A custom resource's structural schema alone: pruning, defaulting, validation messages, CEL
rules (new and transition), and the CRD's own rules and names."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from bosun.api import discovery, openapi
from bosun.api.catalog import Catalog, version_priority
from bosun.api.crd import cel, structural
from bosun.api.crd.controller import _claim, _conflict, wanted_status
from bosun.api.crd.definition import default_definition, validate_definition
from bosun.api.crd.rows import rows_of
from bosun.api.crd.version import CustomVersion
from bosun.api.instrumentation import classify
from bosun.api.openapi_proto import decode_document
from bosun.api.tables import to_table
from bosun.api.validation.fields import Checker

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "x-kubernetes-validations": [
                {"rule": "self.low <= self.high", "message": "low must not exceed high"},
                {"rule": "self.low == oldSelf.low", "message": "low is immutable"},
            ],
            "properties": {
                "low": {"type": "integer", "default": 0},
                "high": {"type": "integer", "default": 10, "maximum": 100},
                "nested": {"type": "object", "properties": {"a": {"type": "string", "default": "x"}}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "items": {"type": "array", "items": {"type": "object",
                                                     "properties": {"k": {"type": "string"}}}},
                "either": {"x-kubernetes-int-or-string": True},
                "pod": {"type": "object", "x-kubernetes-embedded-resource": True,
                        "properties": {"spec": {"type": "object"}}},
            },
        },
    },
}


def test_pruning_drops_undeclared_fields_and_keeps_declared_preserved_and_embedded() -> None:
    obj: dict[str, Any] = {"apiVersion": "g/v1", "kind": "K", "metadata": {"name": "a"}, "top": 1,
           "spec": {"low": 1, "x": 2, "free": {"any": {"deep": 1}}, "labels": {"a": "b"},
                    "items": [{"k": "v", "junk": 1}], "nested": {"a": "y", "b": 2},
                    "pod": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}, "z": 1}}}
    dropped = structural.prune(obj, SCHEMA)
    assert sorted(dropped) == ["spec.items[0].junk", "spec.nested.b", "spec.pod.z", "spec.x", "top"]
    assert obj["spec"]["free"] == {"any": {"deep": 1}} and obj["metadata"] == {"name": "a"}
    assert obj["spec"]["pod"] == {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}}


def test_defaults_fill_absent_fields_of_present_objects_only() -> None:
    obj: dict[str, Any] = {"spec": {"high": 5}}
    structural.default(obj, SCHEMA)
    assert obj == {"spec": {"high": 5, "low": 0}}  # nested is absent: its defaults are not made
    obj = {"spec": {"nested": {}}}
    structural.default(obj, SCHEMA)
    assert obj["spec"]["nested"] == {"a": "x"}


def _details(obj: Any, old: Any = None, rules: structural.RuleCheck | bool | None = True) -> list[str]:
    check = cel.Rules().check if rules is True else rules or None
    return [e.detail() for e in structural.validate(obj, SCHEMA, "", check, old)]


def test_validation_messages_match_kube_openapi() -> None:
    assert _details({"spec": {"low": "1", "high": 101, "either": 1.5, "labels": {"a": 1}}}) == [
        'spec.low: Invalid value: "string": spec.low in body must be of type integer: "string"',
        "spec.high: Invalid value: 101: spec.high in body should be less than or equal to 100",
        'spec.either: Invalid value: "number": spec.either in body must be of type integer or string: "number"',
        'spec.labels.a: Invalid value: "integer": spec.labels.a in body must be of type string: "integer"',
        '<nil>: Invalid value: "": some validation rules were not checked because the object was invalid; '
        "correct the existing errors to complete validation",
    ]
    assert _details({"spec": {"pod": {"metadata": {}}}}) == [
        "spec.pod.apiVersion: Required value: must not be empty",
        "spec.pod.kind: Required value: must not be empty",
        'spec: Invalid value: "object": no such key: low evaluating rule: self.low <= self.high',
    ]


def test_cel_rules_with_messages_and_transitions() -> None:
    assert _details({"spec": {"low": 5, "high": 1}}) == ['spec: Invalid value: "object": low must not exceed high']
    assert _details({"spec": {"low": 1, "high": 5}}) == []
    new, old = {"spec": {"low": 2, "high": 5}}, {"spec": {"low": 1, "high": 5}}
    transitions = [e.detail() for e in structural.validate(new, SCHEMA, "", cel.Rules().check_transitions, old)]
    assert transitions == ['spec: Invalid value: "object": low is immutable']
    assert cel.compile_error("self.a ==") is not None and cel.compile_error("self.a == 1") is None


def test_custom_version_prunes_defaults_and_validates_as_a_strategy() -> None:
    crd = _crd()
    (res,) = rows_of(crd)
    strategy = res.strategy
    assert isinstance(strategy, CustomVersion) and res.custom is strategy
    obj: dict[str, Any] = {"apiVersion": "ex.com/v1", "kind": "Thing", "metadata": {"name": "t", "namespace": "n"},
           "spec": {"low": 3, "bogus": 1}, "status": {"set": "by client"}}
    strategy.prepare_for_create(res, obj)
    strategy.default(res, obj)
    assert obj["spec"] == {"low": 3, "high": 10} and "status" not in obj
    assert strategy.validate(res, obj) == []
    obj["metadata"]["name"] = "Bad_Name"
    assert [e.field for e in strategy.validate(res, obj)] == ["metadata.name"]
    assert res.custom.unknown_fields({"spec": {"zz": 1}}) == ["spec.zz"]
    assert (res.short_names, res.categories, res.subresources) == (("th",), ("all",), ("status", "scale"))


def _crd(**changes: Any) -> dict[str, Any]:
    crd: dict[str, Any] = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "things.ex.com"},
        "spec": {"group": "ex.com", "scope": "Namespaced",
                 "names": {"plural": "things", "kind": "Thing", "shortNames": ["th"], "categories": ["all"]},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": SCHEMA},
                               "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.low",
                                                                        "statusReplicasPath": ".status.n"}}}]},
    }
    crd["spec"].update(changes)
    default_definition(crd)
    return crd


def _crd_errors(crd: dict[str, Any]) -> list[str]:
    c = Checker()
    validate_definition(c, crd)
    return [e.detail() for e in c.errors]


def test_a_valid_crd_is_defaulted_and_passes() -> None:
    crd = _crd()
    assert crd["spec"]["names"]["singular"] == "thing" and crd["spec"]["names"]["listKind"] == "ThingList"
    assert crd["spec"]["conversion"] == {"strategy": "None"}
    assert _crd_errors(crd) == []


@pytest.mark.parametrize("path, value, message", [
    (("spec", "group"), "nodot", 'spec.group: Invalid value: "nodot": should be a domain with at least one dot'),
    (("spec", "names", "kind"), "", "spec.names.kind: Required value"),
    (("spec", "versions", 0, "name"), "V1", 'spec.versions[0].name: Invalid value: "V1": a DNS-1035 label'),
    (("spec", "versions", 0, "schema"), {}, "spec.versions[0].schema.openAPIV3Schema: Required value: schemas "
                                            "are required"),
    (("spec", "versions", 0, "schema", "openAPIV3Schema", "type"), "string",
     'spec.versions[0].schema.openAPIV3Schema.type: Invalid value: "string": must be object at the root'),
    (("spec", "versions", 0, "schema", "openAPIV3Schema", "properties", "metadata"),
     {"type": "object", "properties": {"labels": {"type": "object"}}},
     "spec.versions[0].schema.openAPIV3Schema.properties[metadata]: Forbidden: must not specify anything other "
     "than name and generateName"),
    (("spec", "versions", 0, "schema", "openAPIV3Schema", "properties", "spec", "properties", "free",
      "x-kubernetes-preserve-unknown-fields"), False,
     "properties[free].x-kubernetes-preserve-unknown-fields: Invalid value: false: must be true or undefined"),
    (("spec", "versions", 0, "schema", "openAPIV3Schema", "properties", "spec", "additionalProperties"),
     {"type": "string"}, "properties[spec].additionalProperties: Forbidden: additionalProperties and properties "
                         "are mutual exclusive"),
    (("spec", "versions", 0, "subresources", "scale", "specReplicasPath"), ".status.x",
     'spec.versions[0].subresources.scale.specReplicasPath: Invalid value: ".status.x": should be a json path '
     "under .spec"),
    (("spec", "versions", 0, "schema", "openAPIV3Schema", "properties", "spec", "properties", "high", "default"),
     "ten", 'properties[high].default: Invalid value: "ten": default in body must be of type integer: "string"'),
    (("spec", "conversion", "strategy"), "Webhook",
     'spec.conversion.strategy: Unsupported value: "Webhook": supported values: "None"'),
])
def test_invalid_crds_say_why(path: tuple[Any, ...], value: Any, message: str) -> None:
    crd = copy.deepcopy(_crd())
    target: Any = crd
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    errors = _crd_errors(crd)
    assert any(message in e for e in errors), errors


def test_names_in_use_are_not_accepted() -> None:
    catalog = Catalog()
    first = _crd()
    first["status"] = wanted_status(first, "")
    assert {c["type"]: c["status"] for c in first["status"]["conditions"]} == {
        "NamesAccepted": "True", "Established": "True"}
    catalog.set_custom("things.ex.com", rows_of(first))
    other = _crd()
    other["metadata"]["name"] = "widgets.ex.com"
    other["spec"]["names"] = {"plural": "widgets", "kind": "Thing", "listKind": "ThingList"}
    assert _conflict(catalog, other) == '"Thing" is already in use'
    status = wanted_status(other, _conflict(catalog, other))
    assert [(c["type"], c["status"]) for c in status["conditions"]] == [
        ("NamesAccepted", "False"), ("Established", "False")]
    # Accepted a moment ago, not served yet: its names are claimed all the same.
    claims = {"widgets.ex.com": _claim(other)}
    assert _conflict(Catalog(), _crd(), claims) == '"Thing" is already in use'
    assert _conflict(Catalog(), other, claims) == ""
    builtin = _crd(group="apps")
    builtin["spec"]["names"] = {"plural": "deployments", "kind": "MyDeployment"}
    assert _conflict(catalog, builtin) == '"deployments" is already in use'


def test_generation_counts_every_change_but_metadata_and_status() -> None:
    (res,) = rows_of(_crd())
    old = {"apiVersion": "ex.com/v1", "metadata": {"name": "t"}, "spec": {"low": 1}, "data": 1, "status": {}}
    bumps = res.strategy.bumps_generation
    assert not bumps(res, dict(old, metadata={"name": "t", "labels": {"a": "b"}}, status={"n": 1}), old)
    assert not bumps(res, dict(old, apiVersion="ex.com/v1beta1"), old)
    assert bumps(res, dict(old, data=2), old) and bumps(res, dict(old, spec={"low": 2}), old)
    crd = _crd()
    del crd["spec"]["versions"][0]["subresources"]
    (plain,) = rows_of(crd)  # without a status subresource, status is part of what is counted
    assert plain.strategy.bumps_generation(plain, dict(old, status={"n": 1}), old)


def test_a_terminating_crd_takes_no_new_objects() -> None:
    crd = _crd()
    crd["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    (res,) = rows_of(crd)
    assert "create" not in res.verbs and "delete" in res.verbs


def test_catalog_orders_versions_as_kubernetes_and_forgets_removed_crds() -> None:
    assert sorted(["v1beta1", "v2", "v1", "v1alpha1", "foo"], key=version_priority) == [
        "v2", "v1", "v1beta1", "v1alpha1", "foo"]
    catalog = Catalog()
    crd = _crd()
    crd["spec"]["versions"].insert(0, dict(crd["spec"]["versions"][0], name="v1beta1", storage=False))
    catalog.set_custom("things.ex.com", rows_of(crd))
    assert catalog.group_versions()["ex.com"] == ["v1", "v1beta1"]
    assert catalog.by_kind("ex.com/v1beta1", "Thing") is not None
    assert classify("GET", "/apis/ex.com/v1/namespaces/a/things", False, catalog) == (
        "LIST", "ex.com", "v1", "things", "")  # request metrics name the custom resource
    catalog.remove_custom("things.ex.com")
    assert "ex.com" not in catalog.group_versions() and catalog.by_plural("ex.com", "v1", "things") is None
    assert classify("GET", "/apis/ex.com/v1/namespaces/a/things", False, catalog) == ("GET", "", "", "", "")


def test_openapi_and_discovery_serve_an_established_crd() -> None:
    catalog = Catalog()
    crd = _crd()
    crd["spec"]["versions"][0]["additionalPrinterColumns"] = [{"name": "Low", "type": "integer",
                                                               "jsonPath": ".spec.low"}]
    before = openapi.openapi_v2(catalog)
    catalog.set_custom("things.ex.com", rows_of(crd))
    v3 = orjson.loads(openapi.openapi_v3("apis/ex.com/v1", catalog) or b"{}")
    thing = v3["components"]["schemas"]["com.ex.v1.Thing"]
    assert thing["x-kubernetes-group-version-kind"] == [{"group": "ex.com", "kind": "Thing", "version": "v1"}]
    assert thing["properties"]["spec"]["properties"]["low"] == {"type": "integer", "default": 0}
    assert "/apis/ex.com/v1/namespaces/{namespace}/things/{name}/scale" in v3["paths"]
    assert "apis/ex.com/v1" in openapi.openapi_v3_index(catalog)["paths"]
    v2 = openapi.openapi_v2(catalog)
    assert v2 != before and b'"com.ex.v1.ThingList"' in v2
    doc = decode_document(openapi.openapi_v2_protobuf(catalog))
    assert "com.ex.v1.Thing" in [p.name for p in doc.definitions.additional_properties]
    legacy = discovery.resource_list("ex.com", "v1", catalog) or {}
    assert [(r["name"], r.get("shortNames")) for r in legacy["resources"]] == [
        ("things", ["th"]), ("things/status", None), ("things/scale", None)]
    aggregated = discovery.aggregated(False, catalog=catalog)
    (group,) = [g for g in aggregated["items"] if g["metadata"].get("name") == "ex.com"]
    assert group["versions"][0]["resources"][0]["categories"] == ["all"]
    table = to_table(catalog.by_plural("ex.com", "v1", "things"),  # type: ignore[arg-type]
                     [{"metadata": {"name": "t"}, "spec": {"low": 4}}])
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Low"] and table["rows"][0]["cells"] == ["t", 4]


@pytest.mark.parametrize("fmt, good, bad", [
    ("date-time", "2024-05-01T10:00:00Z", "yesterday"), ("date", "2024-05-01", "2024-13-01"),
    ("uuid", "123e4567-e89b-12d3-a456-426614174000", "123"), ("ipv4", "10.0.0.1", "10.0.0.256"),
    ("ipv6", "fd00::1", "fd00:::1"), ("cidr", "10.0.0.0/8", "10.0.0.0/33"), ("hostname", "a.example", "-a"),
    ("byte", "aGk=", "not base64!"),
])
def test_string_formats(fmt: str, good: str, bad: str) -> None:
    schema = {"type": "string", "format": fmt}
    assert structural.validate(good, schema, "spec.x") == []
    assert [e.detail() for e in structural.validate(bad, schema, "spec.x")] == [
        f'spec.x: Invalid value: "{bad}": spec.x in body must be of type {fmt}: "{bad}"']

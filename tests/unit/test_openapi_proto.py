"""The v2 document as gnostic protobuf: what kubectl's v2 parser (kube-openapi's
``pkg/util/proto``) reads from it must survive the encoding: every definition, field
descriptions beside plain ``$ref``s, maps, arrays, required lists and YAML vendor extensions."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import yaml

from bosun.api import openapi
from bosun.api.openapi_proto import decode_document, encode_document, message_class


def _definitions() -> dict[str, Any]:
    doc = decode_document(openapi.openapi_v2_protobuf())
    return {ns.name: ns.value for ns in doc.definitions.additional_properties}


def _props(schema: Any) -> dict[str, Any]:
    return {p.name: p.value for p in schema.properties.additional_properties}


def test_every_json_definition_is_in_the_protobuf_document() -> None:
    doc = decode_document(openapi.openapi_v2_protobuf())
    as_json = orjson.loads(openapi.openapi_v2())
    assert doc.swagger == "2.0" and doc.info.title == "Kubernetes"
    assert [ns.name for ns in doc.definitions.additional_properties] == list(as_json["definitions"])
    assert [p.name for p in doc.paths.path] == list(as_json["paths"])


def test_pod_definition_reads_as_kubectl_reads_it() -> None:
    defs = _definitions()
    pod = defs["io.k8s.api.core.v1.Pod"]
    assert list(pod.type.value) == ["object"]
    gvk = {e.name: yaml.safe_load(e.value.yaml) for e in pod.vendor_extension}
    assert gvk["x-kubernetes-group-version-kind"] == [{"group": "", "kind": "Pod", "version": "v1"}]
    metadata = _props(pod)["metadata"]
    # A plain $ref with its description: kubectl ignores allOf and would not check metadata.
    assert metadata._ref == "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    assert not metadata.all_of and not metadata.type.value
    containers = _props(defs["io.k8s.api.core.v1.PodSpec"])["containers"]
    assert list(containers.type.value) == ["array"]
    assert containers.items.schema[0]._ref == "#/definitions/io.k8s.api.core.v1.Container"
    ext = {e.name: yaml.safe_load(e.value.yaml) for e in containers.vendor_extension}
    assert ext == {"x-kubernetes-patch-merge-key": "name", "x-kubernetes-patch-strategy": "merge"}
    assert "containers" in defs["io.k8s.api.core.v1.PodSpec"].required
    labels = _props(defs["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"])["labels"]
    assert list(labels.additional_properties.schema.type.value) == ["string"]


def test_every_reference_names_a_definition() -> None:
    defs = _definitions()

    def walk(schema: Any) -> None:
        if schema._ref:
            assert schema._ref.removeprefix("#/definitions/") in defs, schema._ref
        for p in schema.properties.additional_properties:
            walk(p.value)
        for item in schema.items.schema:
            walk(item)
        if schema.additional_properties.HasField("schema"):
            walk(schema.additional_properties.schema)

    for schema in defs.values():
        walk(schema)


def test_operations_keep_parameters_and_responses() -> None:
    doc = decode_document(openapi.openapi_v2_protobuf())
    item = next(p.value for p in doc.paths.path if p.name == "/api/v1/namespaces/{namespace}/pods/{name}")
    assert item.patch.operation_id == "patchV1NamespacedPod"
    params = {p.parameter.non_body_parameter.query_parameter_sub_schema.name for p in item.patch.parameters
              if p.parameter.HasField("non_body_parameter")}
    assert {"fieldValidation", "fieldManager", "dryRun", "force"} <= params
    body = next(p.parameter.body_parameter for p in item.put.parameters if p.parameter.HasField("body_parameter"))
    assert body.schema._ref == "#/definitions/io.k8s.api.core.v1.Pod" and body.required
    ok = {r.name: r.value for r in item.get.responses.response_code}["200"]
    assert ok.response.schema.schema._ref == "#/definitions/io.k8s.api.core.v1.Pod"
    path_params = [p.parameter.non_body_parameter.path_parameter_sub_schema for p in item.parameters
                   if p.parameter.non_body_parameter.HasField("path_parameter_sub_schema")]
    assert {(p.name, p.required) for p in path_params} == {("name", True), ("namespace", True)}


def test_free_form_values_and_sum_types() -> None:
    doc = {"swagger": "2.0", "definitions": {"T": {
        "type": "object",
        "properties": {
            "mode": {"type": "string", "enum": ["A", "B"], "default": "A"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "extra": {"type": "object", "additionalProperties": True},
            "n": {"type": "integer", "format": "int64", "minimum": 1, "maxLength": 3},
        },
        "x-custom": {"a": [1, 2]},
    }}}
    msg = decode_document(encode_document(doc))
    t = msg.definitions.additional_properties[0].value
    props = _props(t)
    assert [yaml.safe_load(e.yaml) for e in props["mode"].enum] == ["A", "B"]
    assert yaml.safe_load(props["mode"].default.yaml) == "A"
    assert list(props["tags"].items.schema[0].type.value) == ["string"]
    assert props["extra"].additional_properties.boolean is True
    assert props["n"].minimum == 1 and props["n"].max_length == 3 and props["n"].format == "int64"
    assert yaml.safe_load(t.vendor_extension[0].value.yaml) == {"a": [1, 2]}


def test_a_key_gnostic_has_no_field_for_is_an_error_not_a_silent_drop() -> None:
    with pytest.raises(ValueError, match="patternProperties"):
        encode_document({"definitions": {"T": {"type": "object", "patternProperties": {}}}})


def test_message_classes_are_gnostic_names() -> None:
    assert message_class("Document").DESCRIPTOR.full_name == "openapi.v2.Document"
    assert message_class("Schema").DESCRIPTOR.fields_by_name["vendor_extension"].number == 31


def test_accept_negotiation() -> None:
    assert openapi.v2_wants_protobuf(openapi.V2_PROTOBUF)
    assert openapi.v2_wants_protobuf(openapi.V2_PROTOBUF_CONTENT_TYPE)
    assert not openapi.v2_wants_protobuf("application/json, " + openapi.V2_PROTOBUF)
    assert not openapi.v2_wants_protobuf("")
    assert openapi.v2_etag(True) != openapi.v2_etag(False)

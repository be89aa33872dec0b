"""The OpenAPI v2 document as gnostic's ``openapi.v2.Document`` protobuf message.

client-go fetches ``/openapi/v2`` only as protobuf
(``application/com.github.proto-openapi.spec.v2@v1.0+protobuf``), and kubectl needs it whenever
it validates on the client: always for ``kind: List`` documents, whose items cannot be checked
by the server's ``fieldValidation``. So the JSON document :mod:`bosun.api.openapi` builds is
re-encoded here.

The message definitions are declared below (field numbers and types of gnostic's
``openapiv2/OpenAPIv2.proto``, restricted to what a Kubernetes-style document uses) and turned
into real protobuf classes at import with the ``protobuf`` runtime, so there is no generated
module to keep in step and no ``protoc`` at build time. Messages left out (security, headers,
form parameters, XML, ...) are never produced by Bosun; their field numbers stay free, so what
is encoded here decodes with gnostic's full definitions.

gnostic spells JSON maps as repeated ``Named*`` pairs, keeps ``x-`` vendor extensions and
free-form values (``default``, ``example``, ``enum``) as YAML text in its own ``Any``, and wraps
the sum types of the spec (``type``, ``items``, ``additionalProperties``, a parameter or its
``$ref``, ...) in one-field or ``oneof`` messages; the converters follow that.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml
from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

__all__ = ["MESSAGES", "decode_document", "encode_document", "message_class"]

_PACKAGE = "openapi.v2"

# One line per field: "<name> <number> [repeated] <type>"; a type is a proto scalar or a message
# of this file ("Any" is gnostic's own; "google.protobuf.Any" is the well-known one). Fields of
# one "oneof" group are listed under the "|" key.
MESSAGES: dict[str, str] = {
    "Any": "value 1 .google.protobuf.Any; yaml 2 string",
    "NamedAny": "name 1 string; value 2 Any",
    "Document": (
        "swagger 1 string; info 2 Info; host 3 string; base_path 4 string; schemes 5 repeated string; "
        "consumes 6 repeated string; produces 7 repeated string; paths 8 Paths; "
        "definitions 9 Definitions; vendor_extension 16 repeated NamedAny"
    ),
    "Info": (
        "title 1 string; version 2 string; description 3 string; terms_of_service 4 string; "
        "vendor_extension 7 repeated NamedAny"
    ),
    "Paths": "vendor_extension 1 repeated NamedAny; path 2 repeated NamedPathItem",
    "NamedPathItem": "name 1 string; value 2 PathItem",
    "PathItem": (
        "_ref 1 string; get 2 Operation; put 3 Operation; post 4 Operation; delete 5 Operation; "
        "options 6 Operation; head 7 Operation; patch 8 Operation; parameters 9 repeated ParametersItem; "
        "vendor_extension 10 repeated NamedAny"
    ),
    "Operation": (
        "tags 1 repeated string; summary 2 string; description 3 string; operation_id 5 string; "
        "produces 6 repeated string; consumes 7 repeated string; parameters 8 repeated ParametersItem; "
        "responses 9 Responses; schemes 10 repeated string; deprecated 11 bool; "
        "vendor_extension 13 repeated NamedAny"
    ),
    "ParametersItem": "| parameter 1 Parameter; json_reference 2 JsonReference",
    "JsonReference": "_ref 1 string; description 2 string",
    "Parameter": "| body_parameter 1 BodyParameter; non_body_parameter 2 NonBodyParameter",
    "BodyParameter": (
        "description 1 string; name 2 string; in 3 string; required 4 bool; schema 5 Schema; "
        "vendor_extension 6 repeated NamedAny"
    ),
    "NonBodyParameter": "| query_parameter_sub_schema 3 QueryParameterSubSchema; "
                        "path_parameter_sub_schema 4 PathParameterSubSchema",
    "QueryParameterSubSchema": (
        "required 1 bool; in 2 string; description 3 string; name 4 string; allow_empty_value 5 bool; "
        "type 6 string; format 7 string; collection_format 9 string; default 10 Any; "
        "pattern 17 string; unique_items 20 bool; enum 21 repeated Any; vendor_extension 23 repeated NamedAny"
    ),
    "PathParameterSubSchema": (
        "required 1 bool; in 2 string; description 3 string; name 4 string; type 5 string; "
        "format 6 string; collection_format 8 string; default 9 Any; pattern 16 string; "
        "unique_items 19 bool; enum 20 repeated Any; vendor_extension 22 repeated NamedAny"
    ),
    "Responses": "response_code 1 repeated NamedResponseValue; vendor_extension 2 repeated NamedAny",
    "NamedResponseValue": "name 1 string; value 2 ResponseValue",
    "ResponseValue": "| response 1 Response; json_reference 2 JsonReference",
    "Response": "description 1 string; schema 2 SchemaItem; vendor_extension 5 repeated NamedAny",
    "SchemaItem": "| schema 1 Schema",
    "Definitions": "additional_properties 1 repeated NamedSchema",
    "NamedSchema": "name 1 string; value 2 Schema",
    "Properties": "additional_properties 1 repeated NamedSchema",
    "AdditionalPropertiesItem": "| schema 1 Schema; boolean 2 bool",
    "TypeItem": "value 1 repeated string",
    "ItemsItem": "schema 1 repeated Schema",
    "Schema": (
        "_ref 1 string; format 2 string; title 3 string; description 4 string; default 5 Any; "
        "multiple_of 6 double; maximum 7 double; exclusive_maximum 8 bool; minimum 9 double; "
        "exclusive_minimum 10 bool; max_length 11 int64; min_length 12 int64; pattern 13 string; "
        "max_items 14 int64; min_items 15 int64; unique_items 16 bool; max_properties 17 int64; "
        "min_properties 18 int64; required 19 repeated string; enum 20 repeated Any; "
        "additional_properties 21 AdditionalPropertiesItem; type 22 TypeItem; items 23 ItemsItem; "
        "all_of 24 repeated Schema; properties 25 Properties; discriminator 26 string; "
        "read_only 27 bool; example 30 Any; vendor_extension 31 repeated NamedAny"
    ),
}

_SCALARS = {
    "string": descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
    "bool": descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
    "double": descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE,
    "int64": descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
}


def _fields(spec: str) -> tuple[bool, list[tuple[str, int, bool, str]]]:
    """(is one oneof group, [(name, number, repeated, type)]) from a MESSAGES line."""
    oneof = spec.startswith("|")
    out = []
    for part in spec.lstrip("|").split(";"):
        words = part.split()
        repeated = words[2] == "repeated"
        out.append((words[0], int(words[1]), repeated, words[-1]))
    return oneof, out


def _file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    f = descriptor_pb2.FileDescriptorProto(
        name="openapiv2/OpenAPIv2.proto", package=_PACKAGE, syntax="proto3",
        dependency=["google/protobuf/any.proto"],
    )
    for msg_name, spec in MESSAGES.items():
        m = f.message_type.add(name=msg_name)
        oneof, fields = _fields(spec)
        if oneof:
            m.oneof_decl.add(name="oneof")
        for name, number, repeated, typ in fields:
            fd = m.field.add(name=name, number=number, json_name=name)
            fd.label = fd.LABEL_REPEATED if repeated else fd.LABEL_OPTIONAL
            if typ in _SCALARS:
                fd.type = _SCALARS[typ]  # type: ignore[assignment]
            else:
                fd.type = fd.TYPE_MESSAGE
                fd.type_name = typ if typ.startswith(".") else f".{_PACKAGE}.{typ}"
            if oneof:
                fd.oneof_index = 0
    return f


def _build_pool() -> descriptor_pool.DescriptorPool:
    # A pool of our own: nothing else in the process can register a clashing openapi.v2.
    pool = descriptor_pool.DescriptorPool()
    any_file = descriptor_pb2.FileDescriptorProto()
    any_pb2.DESCRIPTOR.CopyToProto(any_file)
    pool.Add(any_file)
    pool.Add(_file_descriptor())
    return pool


_POOL = _build_pool()


def message_class(name: str) -> type[Message]:
    """The protobuf class of ``openapi.v2.<name>`` (e.g. ``Document``)."""
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"{_PACKAGE}.{name}"))


# JSON key -> proto field, per message: camelCase of the field name; "$ref" for "_ref".
def _json_key(field: str) -> str:
    if field == "_ref":
        return "$ref"
    head, *rest = field.split("_")
    return head + "".join(w.capitalize() for w in rest)


_KEYS: dict[str, dict[str, tuple[str, bool, str]]] = {
    msg: {_json_key(n): (n, rep, t) for n, _, rep, t in _fields(spec)[1]} for msg, spec in MESSAGES.items()
}


def _yaml(value: Any) -> str:
    return yaml.dump(value, Dumper=yaml.CSafeDumper, default_flow_style=False, allow_unicode=True)


def _fill(msg: Any, kind: str, data: Any) -> None:
    """Write JSON value ``data`` into ``msg``, an ``openapi.v2.<kind>`` message."""
    special = _SPECIAL.get(kind)
    if special is not None:
        special(msg, data)
        return
    keys = _KEYS[kind]
    for key, value in data.items():
        if key.startswith("x-") and "vendorExtension" in keys:
            ext = msg.vendor_extension.add(name=key)
            ext.value.yaml = _yaml(value)
            continue
        try:
            name, repeated, typ = keys[key]
        except KeyError:
            raise ValueError(f"openapi.v2.{kind} has no field for {key!r}") from None
        if typ in _SCALARS:
            if repeated:
                getattr(msg, name).extend(value)
            else:
                setattr(msg, name, value)
        elif repeated:
            field = getattr(msg, name)
            for item in value:
                _fill(field.add(), typ, item)
        else:
            _fill(getattr(msg, name), typ, value)


def _named(kind: str, field: str) -> Callable[[Any, Any], None]:
    """A JSON map as gnostic's repeated ``Named<kind>`` pairs in ``field``."""
    def fill(msg: Any, data: dict[str, Any]) -> None:
        pairs = getattr(msg, field)
        for name, value in data.items():
            pair = pairs.add(name=name)
            _fill(pair.value, kind, value)
    return fill


def _fill_any(msg: Any, data: Any) -> None:
    msg.yaml = _yaml(data)


def _named_or_extension(kind: str, field: str) -> Callable[[Any, Any], None]:
    """As :func:`_named`, but ``x-`` keys are vendor extensions, kept as YAML (Paths and
    Responses allow both in one JSON map)."""
    def fill(msg: Any, data: dict[str, Any]) -> None:
        for key, value in data.items():
            if key.startswith("x-"):
                msg.vendor_extension.add(name=key).value.yaml = _yaml(value)
            else:
                _fill(getattr(msg, field).add(name=key).value, kind, value)
    return fill


def _fill_ref_or(field: str, kind: str) -> Callable[[Any, Any], None]:
    """gnostic's "a $ref or an inline <kind>" oneofs."""
    def fill(msg: Any, data: dict[str, Any]) -> None:
        if "$ref" in data:
            _fill(msg.json_reference, "JsonReference", data)
        else:
            _fill(getattr(msg, field), kind, data)
    return fill


def _fill_parameter(msg: Any, data: dict[str, Any]) -> None:
    if data.get("in") == "body":
        _fill(msg.body_parameter, "BodyParameter", data)
    else:
        _fill(msg.non_body_parameter, "NonBodyParameter", data)


def _fill_non_body(msg: Any, data: dict[str, Any]) -> None:
    where = data.get("in")
    if where == "query":
        _fill(msg.query_parameter_sub_schema, "QueryParameterSubSchema", data)
    elif where == "path":
        _fill(msg.path_parameter_sub_schema, "PathParameterSubSchema", data)
    else:
        raise ValueError(f"parameters in {where!r} are not encoded")


def _fill_type(msg: Any, data: str | list[str]) -> None:
    msg.value.extend([data] if isinstance(data, str) else data)


def _fill_items(msg: Any, data: dict[str, Any] | list[dict[str, Any]]) -> None:
    for item in [data] if isinstance(data, dict) else data:
        _fill(msg.schema.add(), "Schema", item)


def _fill_additional(msg: Any, data: bool | dict[str, Any]) -> None:
    if isinstance(data, bool):
        msg.boolean = data
    else:
        _fill(msg.schema, "Schema", data)


def _fill_schema_item(msg: Any, data: dict[str, Any]) -> None:
    _fill(msg.schema, "Schema", data)


_SPECIAL: dict[str, Callable[[Any, Any], None]] = {
    "Any": _fill_any,
    "Paths": _named_or_extension("PathItem", "path"),
    "Responses": _named_or_extension("ResponseValue", "response_code"),
    "Definitions": _named("Schema", "additional_properties"),
    "Properties": _named("Schema", "additional_properties"),
    "ParametersItem": _fill_ref_or("parameter", "Parameter"),
    "ResponseValue": _fill_ref_or("response", "Response"),
    "Parameter": _fill_parameter,
    "NonBodyParameter": _fill_non_body,
    "TypeItem": _fill_type,
    "ItemsItem": _fill_items,
    "AdditionalPropertiesItem": _fill_additional,
    "SchemaItem": _fill_schema_item,
}


def encode_document(doc: dict[str, Any]) -> bytes:
    """A swagger 2.0 document (as parsed JSON) as serialized ``openapi.v2.Document``.

    Raises ValueError for a key gnostic has no field for here, so that a new construct in the
    JSON document is noticed in tests rather than silently dropped from kubectl's view."""
    msg = message_class("Document")()
    _fill(msg, "Document", doc)
    return msg.SerializeToString()


def decode_document(data: bytes) -> Any:
    """Parse serialized ``openapi.v2.Document`` bytes (for tests and diagnostics)."""
    msg = message_class("Document")()
    msg.ParseFromString(data)
    return msg

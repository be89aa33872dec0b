"""Request parsing and response writing shared by every API handler."""

from __future__ import annotations

from typing import Any

import orjson
import yaml
from aiohttp import web

from bosun.api import errors, protobuf
from bosun.api.errors import APIError
from bosun.api.patch.errors import PatchError
from bosun.api.registry import Resource
from bosun.api.selectors import (
    FieldSelector,
    LabelSelector,
    SelectorError,
    check_field_selector,
    parse_field_selector,
    parse_label_selector,
)

MAX_BODY = 3 * 1024 * 1024  # Kubernetes' limit for a request body

try:  # the C loader is much faster for big manifests
    _YamlLoader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML without libyaml
    _YamlLoader = yaml.SafeLoader


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(obj), status=status, content_type="application/json", headers=headers
    )


def error_response(exc: APIError) -> web.Response:
    return json_response(exc.status(), status=exc.code, headers=exc.headers)


BODY_KEY = web.RequestKey("bosun.body", bytes)


async def read_body(request: web.Request) -> bytes:
    """The raw body, refusing anything over 3 MiB with 413 before reading it all. Read once:
    a check before the handler (admission of a node's own objects) and the handler share it
    through the request's own storage."""
    cached: bytes | None = request.get(BODY_KEY)
    if cached is not None:
        return cached
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise errors.too_large()
    chunks: list[bytes] = []
    size = 0
    while True:  # read() returns what has arrived so far: loop to the end of the body
        chunk = await request.content.read(65536)
        if not chunk:
            break
        size += len(chunk)
        if size > MAX_BODY:
            raise errors.too_large()
        chunks.append(chunk)
    data = b"".join(chunks)
    request[BODY_KEY] = data
    return data


def parse_object(body: bytes, content_type: str) -> dict[str, Any]:
    """Decode a JSON or YAML body into one object, with a 400 that says what is wrong."""
    if not body.strip():
        raise errors.bad_request("the request body is empty: expected a JSON or YAML object")
    ctype = content_type.split(";")[0].strip().lower()
    if protobuf.is_protobuf(ctype):
        # kubectl's typed commands (create namespace/configmap/secret/...) send protobuf and
        # do not fall back to JSON when refused.
        try:
            return protobuf.decode(body)
        except protobuf.ProtobufError as exc:
            raise errors.bad_request(f"couldn't decode the protobuf body: {exc}") from exc
    if ctype not in ("application/json", "application/yaml", "application/x-yaml", "text/yaml", "",
                     "application/octet-stream", "text/plain"):
        raise errors.unsupported_media_type(content_type)
    try:
        if ctype in ("application/yaml", "application/x-yaml", "text/yaml"):
            obj = yaml.load(body, Loader=_YamlLoader)
        else:
            obj = orjson.loads(body)
    except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise errors.bad_request(f"couldn't get version/kind; json parse error: {first}") from exc
    if not isinstance(obj, dict):
        raise errors.bad_request(
            f"couldn't get version/kind; json parse error: expected a JSON object, got {type(obj).__name__}"
        )
    return obj


def check_kind(res: Resource, obj: dict[str, Any], *, expect_kind: str | None = None) -> None:
    """The body's apiVersion/kind must be the URL's; missing ones are filled in."""
    kind = expect_kind or res.kind
    api_version = res.api_version if expect_kind is None else obj.get("apiVersion", "")
    got_v = obj.get("apiVersion")
    got_k = obj.get("kind")
    if got_k is not None and got_k != kind:
        raise errors.bad_request(f"the kind in the data ({got_k}) does not match the expected kind ({kind})")
    if got_v is not None and expect_kind is None and got_v != api_version:
        raise errors.bad_request(
            f"the API version in the data ({got_v}) does not match the expected API version ({api_version})"
        )
    if expect_kind is None:
        obj["apiVersion"] = api_version
        obj["kind"] = kind
    if "metadata" in obj and not isinstance(obj["metadata"], dict):
        raise errors.bad_request(
            f'{kind} in version "{res.version}" cannot be handled as a {kind}: '
            f"json: cannot unmarshal {_json_type(obj['metadata'])} into Go struct field "
            f"{kind}.metadata of type v1.ObjectMeta"
        )


def _json_type(v: Any) -> str:
    if isinstance(v, str):
        return "string"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, list):
        return "array"
    return "object"


def flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true", "yes")


def dry_run(request: web.Request) -> bool:
    values = request.query.getall("dryRun", [])
    for v in values:
        if v != "All":
            raise errors.bad_request(f'dryRun: Unsupported value: "{v}": supported values: "All"')
    return bool(values)


def int_param(request: web.Request, name: str, default: int = 0) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise errors.bad_request(f"{name}: invalid value {raw!r}: must be an integer") from exc


def wants_table(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return "as=Table" in accept and "g=meta.k8s.io" in accept


def wants_partial_metadata(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return "as=PartialObjectMetadata" in accept and "g=meta.k8s.io" in accept


def partial_metadata(obj: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata", {})}


def selectors(request: web.Request, res: Resource) -> tuple[LabelSelector | None, FieldSelector | None]:
    """The labelSelector and fieldSelector of a list or watch (400 for a malformed one)."""
    ls = request.query.get("labelSelector") or None
    fs = request.query.get("fieldSelector") or None
    try:
        labels = parse_label_selector(ls) if ls else None
        fields = parse_field_selector(fs) if fs else None
        if fields is not None:
            check_field_selector(res, fields)
    except SelectorError as exc:
        raise errors.bad_request(str(exc)) from exc
    return labels, fields


def include_object(request: web.Request) -> str:
    value = request.query.get("includeObject", "Metadata")
    if value not in ("None", "Metadata", "Object"):
        raise errors.bad_request(
            f'includeObject: Unsupported value: "{value}": supported values: "Metadata", "None", "Object"'
        )
    return value


def patch_error(exc: PatchError) -> APIError:
    """A patch that cannot be applied, as the Status kube-apiserver answers."""
    reason = {400: "BadRequest", 415: "UnsupportedMediaType"}.get(exc.code, "Invalid")
    return APIError(exc.code, reason, exc.message)

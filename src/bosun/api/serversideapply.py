"""Server-side apply (``PATCH`` with ``application/apply-patch+yaml``) and the field manager
every write is recorded under.

The body is the manager's whole intent for the object (what ``kubectl apply
--server-side`` sends); :func:`bosun.api.fieldmanager.apply` merges it, and this module
turns that into the API's answers: 400 for a body that is not an object of the URL's kind
or a request without ``fieldManager``, 409 naming the conflicting fields and their
managers, and a create when the object does not exist yet.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml
from aiohttp import web

from bosun.api import errors, fieldmanager
from bosun.api.errors import APIError
from bosun.api.patch.schema import schema_for
from bosun.api.registry import Resource

MAX_MANAGER = 128


def manager_of(request: web.Request) -> str:
    """``fieldManager``, or as upstream derives it, the User-Agent up to its first ``/``."""
    name = request.query.get("fieldManager")
    if name is None:
        name = request.headers.get("User-Agent", "").split("/", 1)[0] or "unknown"
    if len(name) > MAX_MANAGER:
        raise errors.bad_request(f"fieldManager: Too long: may not be more than {MAX_MANAGER} bytes")
    return name


def parse_config(body: bytes, res: Resource, name: str) -> dict[str, Any]:
    """The applied configuration: a whole object of the URL's kind and name."""
    try:
        config = yaml.safe_load(body) if body.strip() else None
    except yaml.YAMLError as exc:
        raise errors.bad_request(f"error decoding YAML: {exc}") from exc
    if not isinstance(config, dict):
        raise errors.bad_request("the body of an apply patch must be an object")
    if not config.get("apiVersion") or not config.get("kind"):
        raise errors.bad_request("invalid object type: the applied object must set apiVersion and kind")
    if config.get("kind") != res.kind or config.get("apiVersion") != res.api_version:
        raise errors.bad_request(f"the applied object is a {config.get('apiVersion')}, Kind={config.get('kind')}, "
                                 f"not a {res.api_version}, Kind={res.kind}")
    meta = config.get("metadata") or {}
    if meta.get("name") not in (None, name):
        raise errors.bad_request(f"the name of the object ({meta.get('name')}) does not match the name on the "
                                 f"URL ({name})")
    return config


def conflict_error(exc: fieldmanager.Conflicts, res: Resource, name: str) -> APIError:
    details: dict[str, Any] = {"name": name, "kind": res.plural, "causes": exc.causes()}
    if res.group:
        details["group"] = res.group
    return APIError(409, "Conflict", str(exc), details=details)


def applier(res: Resource, config: dict[str, Any], manager: str, force: bool, subresource: str,
            check: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any] | None], dict[str, Any]]:
    """The function from the live object (None: none yet) to the applied one, checked by
    ``check`` (the decoding stage's field checks)."""
    schema = schema_for(res.group, res.kind)

    def fn(live: dict[str, Any] | None) -> dict[str, Any]:
        try:
            out = fieldmanager.apply(live, config, schema, manager, force=force, subresource=subresource)
        except fieldmanager.Conflicts as exc:
            raise conflict_error(exc, res, str((config.get("metadata") or {}).get("name") or "")) from exc
        check(out)
        return out

    return fn

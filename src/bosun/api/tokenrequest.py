"""TokenRequest (``POST serviceaccounts/NAME/token``): a signed, expiring token for a
ServiceAccount, optionally bound to a pod, as ``kubectl create token`` and node agents ask.

A node may only ask for tokens bound to pods it runs (upstream's NodeRestriction), so a
node's credential cannot be turned into any account's.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from bosun.api import errors
from bosun.api.errors import APIError, FieldError, invalid, not_supported
from bosun.api.handler import Serving
from bosun.api.httputil import json_response, parse_object, read_body
from bosun.api.objects import as_dict, now_rfc3339
from bosun.api.registry import must_by_plural
from bosun.api.requestinfo import USER
from bosun.api.target import Target
from bosun.security.satokens import DEFAULT_EXPIRATION, MIN_EXPIRATION, BoundTo

PODS = must_by_plural("", "v1", "pods")
SECRETS = must_by_plural("", "v1", "secrets")
BINDABLE = {"Pod": PODS, "Secret": SECRETS}
MAX_SECONDS = 2**32


def _rfc3339(unix: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix))


async def create(h: Serving, request: web.Request, t: Target) -> web.Response:
    assert t.name is not None and t.namespace is not None
    if h.service_accounts is None:
        raise APIError(404, "NotFound", "the server could not find the requested resource")
    body = await read_body(request)
    req = parse_object(body, request.content_type) if body.strip() else {}
    spec = as_dict(req.get("spec"))
    account = await h.storage.get(t.res, t.namespace, t.name)  # 404 if there is none
    problems: list[FieldError] = []
    expiration = spec.get("expirationSeconds")
    if expiration is None:
        expiration = DEFAULT_EXPIRATION
    if not isinstance(expiration, int) or isinstance(expiration, bool):
        problems.append(invalid("spec.expirationSeconds", expiration, "must be an integer"))
    elif expiration < MIN_EXPIRATION:
        problems.append(invalid("spec.expirationSeconds", expiration,
                                "may not specify a duration less than 10 minutes"))
    elif expiration > MAX_SECONDS:
        problems.append(invalid("spec.expirationSeconds", expiration,
                                "may not specify a duration larger than 2^32 seconds"))
    audiences = spec.get("audiences") or list(h.service_accounts.audiences)
    if not isinstance(audiences, list) or not all(isinstance(a, str) and a for a in audiences):
        problems.append(invalid("spec.audiences", audiences, "must be a list of non-empty strings"))
    ref = spec.get("boundObjectRef")
    if ref is not None and (not isinstance(ref, dict) or ref.get("kind") not in BINDABLE):
        problems.append(not_supported("spec.boundObjectRef.kind", as_dict(ref).get("kind"), sorted(BINDABLE)))
    if problems:
        raise errors.invalid_object("TokenRequest", t.name, problems, "authentication.k8s.io")
    bound = await _bound(h, t.namespace, ref) if ref is not None else None
    user = request.get(USER)
    node = user.node_name if user is not None else None
    if node is not None:
        await _node_may_ask(h, node, t.namespace, bound)
    token, expires = h.service_accounts.issue(
        t.namespace, t.name, account["metadata"]["uid"], audiences=list(audiences),
        expiration=int(expiration), bound=bound)
    out_spec: dict[str, Any] = {"audiences": list(audiences), "expirationSeconds": int(expiration)}
    if ref is not None:
        out_spec["boundObjectRef"] = ref
    return json_response({
        "kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": t.name, "namespace": t.namespace, "creationTimestamp": now_rfc3339()},
        "spec": out_spec,
        "status": {"token": token, "expirationTimestamp": _rfc3339(expires)},
    }, status=201)


async def _bound(h: Serving, namespace: str, ref: dict[str, Any]) -> BoundTo:
    kind, name, uid = str(ref.get("kind")), str(ref.get("name") or ""), str(ref.get("uid") or "")
    obj = await h.storage.get(BINDABLE[kind], namespace, name)
    actual = str(obj["metadata"].get("uid") or "")
    if uid and uid != actual:
        raise errors.conflict(BINDABLE[kind].plural, name, why=(
            f"the UID in the bound object reference ({uid}) does not match the UID in record. "
            "The object might have been deleted and then recreated"))
    return BoundTo(kind, name, actual)


async def _node_may_ask(h: Serving, node: str, namespace: str, bound: BoundTo | None) -> None:
    if bound is None or bound.kind != "Pod":
        raise errors.forbidden_request(f'node "{node}" requested a token not bound to a pod')
    pod = await h.storage.get(PODS, namespace, bound.name)
    if as_dict(pod.get("spec")).get("nodeName") != node:
        raise errors.forbidden_request(
            f'node "{node}" requested a token bound to a pod scheduled on a different node')

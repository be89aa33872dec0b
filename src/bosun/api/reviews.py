"""``authorization.k8s.io/v1`` access reviews, ``authentication.k8s.io/v1`` SelfSubjectReview
and the node-credential exchange: questions about the caller, answered, never stored.

These make ``kubectl auth can-i`` (SelfSubjectAccessReview, SelfSubjectRulesReview with
``--list``) and ``kubectl auth whoami`` (SelfSubjectReview) work. SubjectAccessReview asks
about any user (what webhooks and the agent's own checks use) and, like in Kubernetes,
needs ``create`` on ``subjectaccessreviews``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bosun.api import errors
from bosun.api.access import AccessControl
from bosun.api.httputil import json_response, parse_object, read_body
from bosun.security.authz import Attributes
from bosun.security.authz.defaults import NODE_CREDENTIAL_PATH
from bosun.security.identity import BOOTSTRAPPERS, User, authenticated

AUTHZ = "/apis/authorization.k8s.io/v1/"
AUTHN = "/apis/authentication.k8s.io/"
PATHS = ("selfsubjectaccessreviews", "subjectaccessreviews", "selfsubjectrulesreviews")


def is_review(path: str) -> bool:
    return path.startswith((AUTHZ, AUTHN)) or path == NODE_CREDENTIAL_PATH


def _attrs_of(user: User, spec: dict[str, Any]) -> Attributes:
    ra = spec.get("resourceAttributes")
    if isinstance(ra, dict):
        return Attributes(user, str(ra.get("verb") or ""), True, str(ra.get("group") or ""),
                          str(ra.get("version") or ""), str(ra.get("resource") or ""),
                          str(ra.get("subresource") or ""), str(ra.get("namespace") or ""),
                          str(ra.get("name") or ""), "", str((ra.get("fieldSelector") or {}).get("rawSelector") or ""))
    nra = spec.get("nonResourceAttributes")
    if isinstance(nra, dict):
        return Attributes(user, str(nra.get("verb") or ""), False, path=str(nra.get("path") or ""))
    raise errors.APIError(422, "Invalid", "spec: Invalid value: ...: exactly one of nonResourceAttributes or "
                          "resourceAttributes must be specified")


def _answer(ac: AccessControl, user: User, body: dict[str, Any]) -> dict[str, Any]:
    spec = body.get("spec") or {}
    verdict = ac.authorizer.authorize(_attrs_of(user, spec))
    status: dict[str, Any] = {"allowed": verdict.allowed}
    if verdict.reason:
        status["reason"] = verdict.reason
    out = dict(body)
    out["metadata"] = {**(body.get("metadata") or {}), "creationTimestamp": None}
    out["status"] = status
    return out


def _rules_review(ac: AccessControl, user: User, body: dict[str, Any]) -> dict[str, Any]:
    ns = str((body.get("spec") or {}).get("namespace") or "")
    resource_rules: list[dict[str, Any]] = []
    url_rules: list[dict[str, Any]] = []
    if user.is_master:
        resource_rules.append({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})
        url_rules.append({"verbs": ["*"], "nonResourceURLs": ["*"]})
    for r in ac.rbac.rules_for(user, ns):
        src = r.source
        if r.urls:
            url_rules.append({"verbs": list(src.get("verbs") or []), "nonResourceURLs": list(r.urls)})
        else:
            rr = {k: list(src[k]) for k in ("verbs", "apiGroups", "resources", "resourceNames") if src.get(k)}
            rr.setdefault("verbs", [])
            resource_rules.append(rr)
    # The node authorizer answers from its graph: its grants cannot be listed as rules.
    out = dict(body)
    out["metadata"] = {"creationTimestamp": None}
    out["status"] = {"resourceRules": resource_rules, "nonResourceRules": url_rules,
                     "incomplete": user.node_name is not None}
    return out


async def serve(ac: AccessControl, request: web.Request, user: User) -> web.Response:
    path = request.path
    if request.method != "POST":
        raise errors.method_not_allowed(f"the server does not allow this method on the requested resource "
                                        f"({request.method.lower()} {path.rsplit('/', 1)[-1]})")
    body = parse_object(await read_body(request), request.content_type)
    if path == NODE_CREDENTIAL_PATH:
        return _node_credential(ac, user, body)
    if path.startswith(AUTHN):
        if path.rstrip("/").rsplit("/", 1)[-1] != "selfsubjectreviews":
            raise errors.APIError(404, "NotFound", "the server could not find the requested resource")
        version = path[len(AUTHN):].split("/", 1)[0]
        return json_response({"kind": "SelfSubjectReview", "apiVersion": f"authentication.k8s.io/{version}",
                              "metadata": {"creationTimestamp": None}, "status": {"userInfo": user.info()}},
                             status=201)
    what = path[len(AUTHZ):].strip("/")
    if what == "selfsubjectaccessreviews":
        return json_response(_answer(ac, user, body), status=201)
    if what == "selfsubjectrulesreviews":
        return json_response(_rules_review(ac, user, body), status=201)
    if what == "subjectaccessreviews":
        spec = body.get("spec") or {}
        subject = authenticated(str(spec.get("user") or ""), *[str(g) for g in spec.get("groups") or []],
                                uid=str(spec.get("uid") or ""))
        if not spec.get("user") and not spec.get("groups"):
            raise errors.APIError(422, "Invalid", 'SubjectAccessReview.authorization.k8s.io "" is invalid: '
                                  "spec.user: Invalid value: \"\": at least one of user or group must be specified")
        # groups are taken as given (a SAR asks about a hypothetical user): don't add authenticated
        subject = User(subject.name, tuple(str(g) for g in spec.get("groups") or []), subject.uid)
        return json_response(_answer(ac, subject, body), status=201)
    raise errors.APIError(404, "NotFound", "the server could not find the requested resource")


def _node_credential(ac: AccessControl, user: User, body: dict[str, Any]) -> web.Response:
    """Trade a join token (or a node's current credential, or admin rights) for the node's
    own credential. RBAC has already let the caller POST here (system:bootstrappers)."""
    node = str(body.get("nodeName") or "")
    if not node or len(node) > 253:
        raise errors.bad_request("nodeName: Required value")
    own = user.node_name
    if not (user.is_master or BOOTSTRAPPERS in user.groups or own == node):
        raise errors.forbidden_request(f'forbidden: User "{user.name}" cannot get a credential for node "{node}"')
    if ac.auth is None:
        raise errors.bad_request("this server runs without authentication: no node credentials")
    token = ac.auth.issue_node_token(node)
    return json_response({"nodeName": node, "user": f"system:node:{node}", "token": token}, status=201)

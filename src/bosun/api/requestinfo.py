"""What a request asks to do, in authorizer terms (Kubernetes' RequestInfo), from the
request as :mod:`bosun.api.target` decoded it (once, for authorization and serving alike)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bosun.api.errors import APIError
from bosun.api.target import Decoded
from bosun.security.authz import Attributes, forbidden_message
from bosun.security.identity import User

# The authenticated user of a request, kept on it for the stages after authorization
# (admission plugins that depend on who writes).
USER = web.RequestKey("bosun.user", User)


def attributes(user: User, d: Decoded) -> Attributes:
    if not d.resource_request:
        return Attributes(user, d.verb, resource_request=False, path=d.path)
    ns = d.namespace
    if d.resource == "namespaces" and d.name and not ns:
        ns = d.name  # a namespace is "in" itself: a RoleBinding there may grant reading it
    return Attributes(user, d.verb, True, d.group, d.version, d.resource, d.subresource, ns, d.name, d.path,
                      d.field_selector)


def forbidden(attrs: Attributes, reason: str = "") -> APIError:
    """The 403 kube-apiserver answers when ``attrs`` is not allowed (``reason`` says why)."""
    details: dict[str, Any] = {}
    if attrs.resource_request and attrs.resource:
        details = {"name": attrs.name, "kind": attrs.resource}
        if attrs.api_group:
            details["group"] = attrs.api_group
    return APIError(403, "Forbidden", forbidden_message(attrs, reason), details=details or None)

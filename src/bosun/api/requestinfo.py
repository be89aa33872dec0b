"""What a request asks to do, in authorizer terms (Kubernetes' RequestInfo), from the
request as :mod:`bosun.api.target` decoded it (once, for authorization and serving alike)."""

from __future__ import annotations

from bosun.api.target import Decoded
from bosun.security.authz import Attributes
from bosun.security.identity import User


def attributes(user: User, d: Decoded) -> Attributes:
    if not d.resource_request:
        return Attributes(user, d.verb, resource_request=False, path=d.path)
    ns = d.namespace
    if d.resource == "namespaces" and d.name and not ns:
        ns = d.name  # a namespace is "in" itself: a RoleBinding there may grant reading it
    return Attributes(user, d.verb, True, d.group, d.version, d.resource, d.subresource, ns, d.name, d.path,
                      d.field_selector)

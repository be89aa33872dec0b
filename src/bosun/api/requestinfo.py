"""What a request asks to do, in authorizer terms (Kubernetes' RequestInfo).

Resource paths are resolved by :func:`bosun.api.rest.parse_target`, the parser the REST
handler itself uses, so authorization and serving can never disagree on which resource,
namespace, name or subresource a path names. Paths it does not know (the metrics API, a
kind not served) are split the same way by hand so that a user is told 403 rather than
learning what exists; everything else (discovery, /openapi, /metrics) is a non-resource
request whose verb is the lower-cased HTTP method.
"""

from __future__ import annotations

from collections.abc import Mapping

from bosun.api.errors import APIError
from bosun.api.rest import NAMESPACE_SUBRESOURCES, parse_target
from bosun.security.authz import Attributes
from bosun.security.identity import User

# Subresources that open a stream into a container: "create" whatever the method (a
# WebSocket upgrade is a GET), so read access never grants a shell.
CONNECT = frozenset({"exec", "attach", "portforward", "proxy"})
_WRITE_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}


def _split(path: str) -> tuple[str, str, list[str]] | None:
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 3 and parts[0] == "api":
        return "", parts[1], parts[2:]
    if len(parts) >= 4 and parts[0] == "apis":
        return parts[1], parts[2], parts[3:]
    return None


def _raw_target(rest: list[str]) -> tuple[str, str, str, str]:
    """(resource, namespace, name, subresource) of a path parse_target does not serve."""
    ns = ""
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in NAMESPACE_SUBRESOURCES:
        ns, rest = rest[1], rest[2:]
    padded = [*rest[:3], "", "", ""]
    return padded[0], ns, padded[1], padded[2]


def attributes(user: User, method: str, path: str, query: Mapping[str, str]) -> Attributes:
    split = _split(path)
    if split is None:
        return Attributes(user, method.lower(), resource_request=False, path=path)
    group, version, rest = split
    try:
        t = parse_target(group, version, rest)
        resource, ns, name, sub = t.res.plural, t.namespace or "", t.name or "", t.sub or ""
    except APIError:
        resource, ns, name, sub = _raw_target(rest)
    if resource == "namespaces" and name and not ns:
        ns = name  # a namespace is "in" itself: a RoleBinding there may grant reading it
    if sub in CONNECT:
        verb = "create"
    elif method in ("GET", "HEAD"):
        if name:
            verb = "get"
        else:
            verb = "watch" if query.get("watch", "").lower() in ("1", "true") else "list"
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = _WRITE_VERBS.get(method, method.lower())
    return Attributes(user, verb, True, group, version, resource, sub, ns, name, path,
                      query.get("fieldSelector", ""))

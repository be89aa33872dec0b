"""A request decoded once into what it names: group, version, resource, namespace, name,
subresource and verb (Kubernetes' RequestInfo).

Authorization reads the decoded request and the REST handler serves it, so the two can never
disagree on which resource, namespace, name or subresource a path names. Paths of resources
this server does not serve (the metrics API, a kind not served) are split the same way so
that a user is told 403 rather than learning what exists; they are answered 404 when
served. Everything else (discovery, /openapi, /metrics) is a non-resource request whose
verb is the lower-cased HTTP method.

Paths are parsed by hand rather than with one aiohttp route per shape because Kubernetes'
URL space is ambiguous to a router (``/api/v1/namespaces/x/pods`` is a pod list while
``/api/v1/namespaces/x/status`` is a namespace subresource).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from bosun.api import errors
from bosun.api.registry import Resource

# Namespace subresources: /api/v1/namespaces/{name}/{sub} is one of these, not a list.
NAMESPACE_SUBRESOURCES = ("status", "finalize")
# Subresources that open a stream into a container: "create" whatever the method (a
# WebSocket upgrade is a GET), so read access never grants a shell.
CONNECT = frozenset({"exec", "attach", "portforward", "proxy"})
_WRITE_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}


@dataclass(frozen=True, slots=True)
class Target:
    """A served resource a request names (``name`` None: the collection)."""

    res: Resource
    namespace: str | None
    name: str | None
    sub: str | None
    verb: str = ""


@dataclass(frozen=True, slots=True)
class Decoded:
    """Everything a request names. ``target`` is the served resource, or None when the path
    is not a resource path (``resource_request`` False) or names nothing served."""

    verb: str
    path: str
    resource_request: bool
    group: str = ""
    version: str = ""
    resource: str = ""
    namespace: str = ""
    name: str = ""
    subresource: str = ""
    field_selector: str = ""
    target: Target | None = None

    def served(self) -> Target:
        """The target, or the 404 kube-apiserver answers for a path it does not serve."""
        if self.target is None:
            raise not_found()
        return self.target


class _Request(Protocol):
    """What decoding reads of a request (``web.Request`` or the in-process request)."""

    method: str
    path: str

    @property
    def query(self) -> Mapping[str, str]: ...

    def get(self, key: object, default: object = None) -> object: ...

    def __setitem__(self, key: object, value: object) -> None: ...


DECODED = web.RequestKey("bosun.decoded", Decoded)


class Lookup(Protocol):
    """Which resources are served (a server's :class:`bosun.api.catalog.Catalog`)."""

    def by_plural(self, group: str, version: str, plural: str) -> Resource | None: ...


def not_found() -> errors.APIError:
    return errors.APIError(404, "NotFound", "the server could not find the requested resource")


def decoded(request: web.Request, served: Lookup) -> Decoded:
    """The request's decoding, made on first use and kept on the request."""
    found = request.get(DECODED)
    if isinstance(found, Decoded):
        return found
    decoded = decode(request.method, request.path, request.query, served)
    request[DECODED] = decoded
    return decoded


def redecoded(request: web.Request, served: Lookup) -> Decoded:
    """The request decoded anew: ``served`` has changed since (a CRD it has just learnt of)."""
    request[DECODED] = fresh = decode(request.method, request.path, request.query, served)
    return fresh


def split_path(path: str) -> tuple[str, str, list[str]] | None:
    """(group, version, the rest) of a resource path; None for anything else."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 3 and parts[0] == "api":
        return "", parts[1], parts[2:]
    if len(parts) >= 4 and parts[0] == "apis":
        return parts[1], parts[2], parts[3:]
    return None


def _names(rest: list[str]) -> tuple[str, str, str, str, bool]:
    """(resource, namespace, name, subresource, too long) of the path after group/version."""
    ns = ""
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in NAMESPACE_SUBRESOURCES:
        ns, rest = rest[1], rest[2:]
    padded = [*rest[:3], "", "", ""]
    return padded[0], ns, padded[1], padded[2], len(rest) > 3


def verb_of(method: str, name: str, sub: str, query: Mapping[str, str]) -> str:
    if sub in CONNECT:
        return "create"
    if method in ("GET", "HEAD"):
        if name:
            return "get"
        return "watch" if query.get("watch", "").lower() in ("1", "true") else "list"
    if method == "DELETE":
        return "delete" if name else "deletecollection"
    return _WRITE_VERBS.get(method, method.lower())


def _served(served: Lookup, group: str, version: str, resource: str, ns: str, name: str, sub: str,
            verb: str) -> Target | None:
    res = served.by_plural(group, version, resource)
    if res is None:
        return None
    if ns and not res.namespaced:
        return None
    if res.namespaced and not ns and name:
        return None
    if sub and sub not in res.subresources:
        return None
    return Target(res, ns or None, name or None, sub or None, verb)


def decode(method: str, path: str, query: Mapping[str, str], served: Lookup) -> Decoded:
    split = split_path(path)
    if split is None:
        return Decoded(method.lower(), path, False)
    group, version, rest = split
    resource, ns, name, sub, too_long = _names(rest)
    verb = verb_of(method, name, sub, query)
    target = None if too_long or not resource else _served(served, group, version, resource, ns, name, sub, verb)
    return Decoded(verb, path, True, group, version, resource, ns, name, sub,
                   query.get("fieldSelector", ""), target)

"""Discovery documents (``/version``, ``/api``, ``/apis``, ``/api/v1``, ``/apis/<g>/<v>``).

kubectl and every client-go program learn which resources exist, their kinds, scopes, verbs,
short names and categories from these documents before doing anything else; a missing or
malformed entry shows up as "the server doesn't have a resource type" or "couldn't get resource
list". Everything here derives from a server's catalog (:mod:`bosun.api.catalog`: the
registry's rows and those of its Established CRDs) so a new row is served at once.

kubectl 1.32 asks ``/api`` and ``/apis`` for the aggregated form first (``Accept:
application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList``) and only uses it when the
response's Content-Type carries the same ``g``/``v``/``as`` parameters (client-go
``discovery.ContentTypeIsGVK``); see :data:`AGGREGATED_CONTENT_TYPE`. A subresource without a
``responseKind`` is dropped by client-go, so every subresource names its kind.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from bosun import __version__
from bosun.api import metrics
from bosun.api.catalog import BUILTIN, Catalog
from bosun.api.groupdoc import api_group, group_entry
from bosun.api.registry import Resource
from bosun.monitoring import custom_api as custom_metrics

KUBE_MAJOR = "1"
KUBE_MINOR = "32"
AGGREGATED_CONTENT_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGGREGATED_CONTENT_TYPE_V2BETA1 = (
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
)

# Subresource -> (group or None for the parent's, version or None, kind or None, verbs), as
# kube-apiserver serves them.
_SUBRESOURCES: dict[str, tuple[str | None, str | None, str | None, tuple[str, ...]]] = {
    "status": (None, None, None, ("get", "patch", "update")),
    "scale": ("autoscaling", "v1", "Scale", ("get", "patch", "update")),
    "binding": ("", "v1", "Binding", ("create",)),
    "eviction": ("policy", "v1", "Eviction", ("create",)),
    "log": ("", "v1", "Pod", ("get",)),
    "exec": ("", "v1", "PodExecOptions", ("create", "get")),
    "attach": ("", "v1", "PodAttachOptions", ("create", "get")),
    "portforward": ("", "v1", "PodPortForwardOptions", ("create", "get")),
    "proxy": (None, None, None,
              ("create", "delete", "get", "patch", "update")),
    "finalize": ("", "v1", "Namespace", ("update",)),
    "token": ("authentication.k8s.io", "v1", "TokenRequest", ("create",)),
    "ephemeralcontainers": (None, None, None, ("get", "patch", "update")),
    "resize": (None, None, None, ("get", "patch", "update")),
}


def subresource_kind(resource: Resource, sub: str) -> tuple[str, str, str, tuple[str, ...]]:
    """(group, version, kind, verbs) a subresource of ``resource`` answers with."""
    group, version, kind, verbs = _SUBRESOURCES.get(sub, (None, None, None, ("get",)))
    return (
        resource.group if group is None else group,
        resource.version if version is None else version,
        resource.kind if kind is None else kind,
        verbs,
    )


def storage_version_hash(resource: Resource) -> str:
    """Opaque per-kind token like kube-apiserver's (clients only compare it for changes)."""
    digest = hashlib.sha256(f"{resource.group}/{resource.version}/{resource.kind}".encode()).digest()
    return base64.b64encode(digest[:8]).decode()


def version_info() -> dict[str, Any]:
    """GET /version. kubectl warns when the minor version is more than one away from its own."""
    return {
        "major": KUBE_MAJOR,
        "minor": KUBE_MINOR,
        "gitVersion": f"v{KUBE_MAJOR}.{KUBE_MINOR}.0-bosun.{__version__}",
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "python",
        "compiler": "cpython",
        "platform": "linux/amd64",
    }


def core_versions(server_address: str = "", catalog: Catalog = BUILTIN) -> dict[str, Any]:
    """GET /api (APIVersions). ``server_address`` is host:port clients should use, if known."""
    return {
        "kind": "APIVersions",
        "versions": list(catalog.group_versions().get("", [])),
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ] if server_address else [],
    }


def api_groups(catalog: Catalog = BUILTIN) -> dict[str, Any]:
    """GET /apis (APIGroupList): every named group, its versions and preferred version."""
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [group_entry(g, vs) for g, vs in catalog.group_versions().items() if g]
        + [group_entry(metrics.GROUP, [metrics.VERSION]), group_entry(custom_metrics.GROUP, [custom_metrics.VERSION])],
    }


def group(group: str, catalog: Catalog = BUILTIN) -> dict[str, Any] | None:
    """GET /apis/<group> (APIGroup), or None when the group is not served (404)."""
    if group == metrics.GROUP:
        return api_group(metrics.GROUP, [metrics.VERSION])
    if group == custom_metrics.GROUP:
        return api_group(custom_metrics.GROUP, [custom_metrics.VERSION])
    versions = catalog.group_versions().get(group)
    if not group or not versions:
        return None
    return api_group(group, versions)


def _aliases(r: Resource) -> dict[str, Any]:
    """shortNames and categories (``kubectl get po``, ``get all``), left out when empty in
    both discovery formats."""
    out: dict[str, Any] = {}
    if r.short_names:
        out["shortNames"] = list(r.short_names)
    if r.categories:
        out["categories"] = list(r.categories)
    return out


def _legacy_entries(r: Resource) -> list[dict[str, Any]]:
    main: dict[str, Any] = {
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": list(r.verbs),
        **_aliases(r),
    }
    main["storageVersionHash"] = storage_version_hash(r)
    out = [main]
    for sub in r.subresources:
        g, v, kind, verbs = subresource_kind(r, sub)
        entry: dict[str, Any] = {
            "name": f"{r.plural}/{sub}", "singularName": "", "namespaced": r.namespaced,
        }
        if (g, v) != (r.group, r.version):
            entry["group"], entry["version"] = g, v
        entry["kind"] = kind
        entry["verbs"] = list(verbs)
        out.append(entry)
    return out


def resource_list(group: str, version: str, catalog: Catalog = BUILTIN) -> dict[str, Any] | None:
    """GET /api/v1 or /apis/<g>/<v> (APIResourceList incl. subresources); None when not served."""
    if (group, version) == (metrics.GROUP, metrics.VERSION):
        return metrics.resource_list()
    rows = catalog.resources_in(group, version)
    if not rows:
        return None
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": [e for r in rows for e in _legacy_entries(r)],
    }


def _aggregated_resource(r: Resource) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": "Namespaced" if r.namespaced else "Cluster",
        "singularResource": r.singular,
        "verbs": list(r.verbs),
        **_aliases(r),
    }
    if r.subresources:
        subs = []
        for sub in r.subresources:
            g, v, kind, verbs = subresource_kind(r, sub)
            subs.append({
                "subresource": sub,
                "responseKind": {"group": g, "version": v, "kind": kind},
                "verbs": list(verbs),
            })
        out["subresources"] = subs
    return out


def _aggregated(catalog: Catalog, core: bool, api_version: str) -> dict[str, Any]:
    items = []
    for g, versions in catalog.group_versions().items():
        if (g == "") != core:
            continue
        items.append({
            "metadata": {"name": g, "creationTimestamp": None} if g else {"creationTimestamp": None},
            "versions": [
                {
                    "version": v,
                    "resources": [_aggregated_resource(r) for r in catalog.resources_in(g, v)],
                    "freshness": "Current",
                }
                for v in versions
            ],
        })
    if not core:
        items.append(metrics.aggregated_item())
        items.append(custom_metrics.aggregated_item())
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": api_version,
        "metadata": {},
        "items": items,
    }


def aggregated(core: bool, v2beta1: bool = False, catalog: Catalog = BUILTIN) -> dict[str, Any]:
    """APIGroupDiscoveryList for GET /api (``core=True``) or /apis with the aggregated Accept.

    Served with Content-Type :data:`AGGREGATED_CONTENT_TYPE` (or ``..._V2BETA1`` when only
    v2beta1 was acceptable, then pass ``v2beta1=True``). Cached: treat the result as read-only.
    """
    api_version = "apidiscovery.k8s.io/v2beta1" if v2beta1 else "apidiscovery.k8s.io/v2"
    return catalog.memo(f"aggregated {core} {api_version}", lambda: _aggregated(catalog, core, api_version))


def negotiate(accept: str) -> str | None:
    """Which aggregated discovery form an Accept header asks for: ``"v2"``, ``"v2beta1"`` or None
    (plain APIVersions/APIGroupList). Honours the client's order, like kube-apiserver."""
    for part in accept.split(","):
        params = {}
        media, *rest = part.split(";")
        for p in rest:
            k, _, val = p.strip().partition("=")
            params[k] = val
        media = media.strip()
        if media in ("application/json", "*/*", "application/*") and not params.get("g"):
            return None
        if params.get("g") == "apidiscovery.k8s.io" and params.get("as") == "APIGroupDiscoveryList":
            if params.get("v") == "v2":
                return "v2"
            if params.get("v") == "v2beta1":
                return "v2beta1"
    return None

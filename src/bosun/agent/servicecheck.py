"""The HTTP checks of a Service that no pod of a node carries (the rest: :mod:`.httpcheck`).

``bosun.io/http-check-target`` on a Service annotated ``bosun.io/http-check`` says what is
checked:

* ``endpoints`` (the default): each ready endpoint. A Service with a selector has its Ready
  pods checked by their own nodes (:func:`.httpcheck.service_url`); a Service *without* one
  has the addresses of the EndpointSlices its user writes (label
  ``kubernetes.io/service-name``) checked, each endpoint whose ``conditions.ready`` is not
  false, on the port of ``bosun.io/http-check-port`` (a number or the slice's port name),
  else the slice's first port;
* ``service``: the Service's own address, ``http://<clusterIP>:<port><path>``, the port from
  ``bosun.io/http-check-port`` (a number or a Service port's name), else the first port: what
  a client of the Service sees, through the service proxy of the node that checks;
* ``both``: the two. Another value counts as the default, as an unreadable interval does.

Those checks (the ClusterIP's, a selectorless Service's endpoints) are not any pod's, so one
node makes them: the Ready node that rendezvous hashing of the Service's namespace/name picks
among the Ready nodes the agent's informer lists (the same pick on every node, spread over the
nodes by Service, moved to another node when that one stops being Ready; a node that sees no
Ready node at all checks them itself). Their results are the node's (the Summary API's
``node.customMetrics``), labelled ``namespace``, ``service`` and ``url`` but not ``node``, so a
series does not split when another node takes it over.
"""

from __future__ import annotations

import hashlib
from typing import Any

CHECK = "bosun.io/http-check"
CHECK_PORT = "bosun.io/http-check-port"
TARGET = "bosun.io/http-check-target"
ENDPOINTS, SERVICE, BOTH = "endpoints", "service", "both"
SERVICE_NAME = "kubernetes.io/service-name"
Obj = dict[str, Any]


def check_target(service: Obj) -> str:
    value = str(((service.get("metadata") or {}).get("annotations") or {}).get(TARGET) or "").strip().lower()
    return value if value in (ENDPOINTS, SERVICE, BOTH) else ENDPOINTS


def _ready_node(node: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


def owner(service: Obj, nodes: list[Obj], me: str) -> str:
    """The node that checks ``service``'s own address and selectorless endpoints."""
    names = [str((n.get("metadata") or {}).get("name", "")) for n in nodes if _ready_node(n)] or [me]
    meta = service.get("metadata") or {}
    key = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
    return max(names, key=lambda n: hashlib.sha256(f"{n}\0{key}".encode()).digest())


def _url(host: str, port: str, path: str) -> str:
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}{path if path.startswith('/') else '/' + path}"


def _port(wanted: str, ports: list[Any]) -> str | None:
    """``wanted`` if a number, else the port of that name in ``ports``; without ``wanted``, the
    first port (80 when there is none)."""
    if wanted.isdigit():
        return wanted
    named = [p for p in ports if isinstance(p, dict) and p.get("port")]
    if not wanted:
        return str(named[0]["port"]) if named else "80"
    return next((str(p["port"]) for p in named if p.get("name") == wanted), None)


def cluster_ip_url(service: Obj) -> str | None:
    """The GET of the Service's own address, or None (headless, no address yet, no such port)."""
    spec = service.get("spec") or {}
    ip = str(spec.get("clusterIP") or "")
    if not ip or ip == "None":
        return None
    annotations = (service.get("metadata") or {}).get("annotations") or {}
    port = _port(str(annotations.get(CHECK_PORT) or "").strip(), spec.get("ports") or [])
    return _url(ip, port, str(annotations.get(CHECK) or "").strip()) if port else None


def slice_urls(service: Obj, slices: list[Obj]) -> list[str]:
    """The GETs of a selectorless Service's ready endpoints, from its EndpointSlices."""
    meta = service.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    path = str(annotations.get(CHECK) or "").strip()
    wanted = str(annotations.get(CHECK_PORT) or "").strip()
    out: list[str] = []
    for s in slices:
        smeta = s.get("metadata") or {}
        if smeta.get("namespace") != meta.get("namespace") or (smeta.get("labels") or {}).get(
                SERVICE_NAME) != meta.get("name"):
            continue
        port = _port(wanted, s.get("ports") or [])
        if port is None:
            continue
        for ep in s.get("endpoints") or []:
            if (ep.get("conditions") or {}).get("ready") is False:
                continue
            out.extend(_url(str(a), port, path) for a in ep.get("addresses") or [])
    return sorted(set(out))


def service_checks(services: list[Obj], slices: list[Obj], nodes: list[Obj], me: str) -> list[tuple[Obj, str]]:
    """(Service, URL) of every check this node makes that belongs to no pod."""
    out = []
    for svc in services:
        annotations = (svc.get("metadata") or {}).get("annotations") or {}
        if not str(annotations.get(CHECK) or "").strip():
            continue
        target = check_target(svc)
        selectorless = not (svc.get("spec") or {}).get("selector")
        wants_ip = target in (SERVICE, BOTH)
        wants_slices = target in (ENDPOINTS, BOTH) and selectorless
        if not (wants_ip or wants_slices) or owner(svc, nodes, me) != me:
            continue
        if wants_ip and (url := cluster_ip_url(svc)):
            out.append((svc, url))
        if wants_slices:
            out.extend((svc, url) for url in slice_urls(svc, slices))
    return out

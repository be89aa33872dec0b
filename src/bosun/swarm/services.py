"""Finding services: every workload labelled ``bosun.io/service``, named as Docker names
them (``STACK_service`` inside a stack, the plain name elsewhere), and their tasks (pods)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bosun.api.kinds import must_by_plural
from bosun.client.rest import ApiError, Client
from bosun.compose.translate.context import IMAGE_ANNOTATION, SERVICE_KEY, STACK_LABEL
from bosun.swarm.kinds import KINDS, Kind

JSON = dict[str, Any]
PODS = must_by_plural("", "v1", "pods")
SERVICES = must_by_plural("", "v1", "services")
NAMESPACES = must_by_plural("", "v1", "namespaces")


@dataclass(slots=True)
class ServiceRef:
    namespace: str
    name: str  # the object name (the DNS name in the namespace)
    stack: str  # "" outside a stack
    kind: Kind
    obj: JSON

    @property
    def display(self) -> str:
        return f"{self.stack}_{self.name}" if self.stack else self.name

    @property
    def id(self) -> str:
        return str((self.obj.get("metadata") or {}).get("uid") or "").replace("-", "")[:12]

    @property
    def mode(self) -> str:
        return self.kind.mode(self.obj)

    @property
    def image(self) -> str:
        template = ((self.obj.get("spec") or {}).get("template") or {})
        ann = ((template.get("metadata") or {}).get("annotations") or {})
        containers = (template.get("spec") or {}).get("containers") or [{}]
        return str(ann.get(IMAGE_ANNOTATION) or containers[0].get("image") or "")

    def selector(self) -> str:
        sel = ((self.obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        return ",".join(f"{k}={v}" for k, v in sorted(sel.items())) or f"{SERVICE_KEY}={self.name}"


def ref_of(kind: Kind, obj: JSON) -> ServiceRef:
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    obj = dict(obj, kind=kind.resource.kind, apiVersion=kind.resource.group_version)
    return ServiceRef(str(meta.get("namespace") or ""), str(meta.get("name") or ""),
                      str(labels.get(STACK_LABEL) or ""), kind, obj)


async def list_services(client: Client, namespace: str | None, selector: str = SERVICE_KEY) -> list[ServiceRef]:
    """Services in ``namespace`` (None: all namespaces), sorted by display name."""
    out: list[ServiceRef] = []
    for kind in KINDS:
        items, _ = await client.list_all(kind.resource, namespace, label_selector=selector)
        out.extend(ref_of(kind, obj) for obj in items)
    return sorted(out, key=lambda s: s.display)


async def find_service(client: Client, reference: str, default_namespace: str) -> ServiceRef | None:
    """``stack_web`` (a stack's service), ``web`` in the current namespace, or an ID prefix."""
    candidates = await list_services(client, None)
    for s in candidates:
        if s.display == reference or (s.namespace == default_namespace and s.name == reference and not s.stack):
            return s
    for s in candidates:
        if s.namespace == default_namespace and s.name == reference:
            return s
    prefixed = [s for s in candidates if len(reference) >= 3 and s.id.startswith(reference)]
    return prefixed[0] if len(prefixed) == 1 else None


async def tasks(client: Client, svc: ServiceRef) -> list[JSON]:
    items, _ = await client.list_all(PODS, svc.namespace, label_selector=svc.selector())
    return sorted(items, key=lambda p: (str((p.get("metadata") or {}).get("creationTimestamp") or ""),
                                        str((p.get("metadata") or {}).get("name") or "")))


async def published_ports(client: Client, svc: ServiceRef) -> str:
    """``*:30080->80/tcp`` for each node port of the service's Service, as Docker prints."""
    try:
        obj = await client.get(SERVICES, svc.name, svc.namespace)
    except ApiError as e:
        if e.not_found:  # a service whose Service was deleted just has no ports
            return ""
        raise
    ports = []
    for p in (obj.get("spec") or {}).get("ports") or []:
        if p.get("nodePort"):
            proto = str(p.get("protocol") or "TCP").lower()
            ports.append(f"*:{p['nodePort']}->{p.get('targetPort', p.get('port'))}/{proto}")
    return ", ".join(ports)

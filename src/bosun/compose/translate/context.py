"""What every translation step reads: the stack, one service, its names and labels, the
pod template being built, and where warnings go."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from bosun.compose.errors import Warnings
from bosun.compose.load import Project

JSON = dict[str, Any]

STACK_LABEL = "com.docker.stack.namespace"  # Docker's own label, so scripts that filter on it work
SERVICE_LABEL = "com.docker.swarm.service.name"  # value: STACK_service, as Docker names services
SERVICE_KEY = "bosun.io/service"  # value: the compose service name (the DNS name in the stack)
MODE_ANNOTATION = "bosun.io/mode"
IMAGE_ANNOTATION = "bosun.io/image"
NETWORK_LABEL_PREFIX = "network.bosun.io/"

_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


def split_labels(pairs: dict[str, str | None]) -> tuple[dict[str, str], dict[str, str]]:
    """Compose labels as (Kubernetes labels, annotations): a key or value Kubernetes does not
    accept as a label (``traefik.http.routers.web.rule=Host(`x`)``) is kept as an annotation."""
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    for key, value in pairs.items():
        text = value or ""
        name = key.rpartition("/")[2]
        if _LABEL_KEY.match(key) and len(name) <= 63 and _LABEL_VALUE.match(text) and len(text) <= 63:
            labels[key] = text
        else:
            annotations[key] = text
    return labels, annotations


def dns_name(name: str) -> str:
    """A Compose name (``my_db``, ``Web.1``) as a Kubernetes DNS-1035 label (``my-db``)."""
    out = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    if not out or not out[0].isalpha():
        out = f"s-{out}".rstrip("-")
    return out[:63].rstrip("-")


def is_dns_name(name: str) -> bool:
    return bool(_DNS_LABEL.match(name)) and len(name) <= 63


@dataclass(slots=True)
class Stack:
    """One stack being translated: its name (the namespace), the project, shared outputs."""

    name: str  # the namespace
    project: Project
    nodes: int = 1  # nodes in the cluster, for global jobs (one completion per node)
    standalone: bool = False  # `bosun service create`: services of a namespace, not of a stack
    warnings: Warnings = field(default_factory=Warnings)
    secret_names: dict[str, str] = field(default_factory=dict)  # compose secret -> Secret name
    config_names: dict[str, str] = field(default_factory=dict)  # compose config -> ConfigMap name
    claims: set[str] = field(default_factory=set)  # PVCs already written (a volume shared by services)

    def labels(self) -> dict[str, str]:
        return {} if self.standalone else {STACK_LABEL: self.name}

    def namespace_selector(self) -> dict[str, str]:
        """Selects this stack's namespace (a standalone one by the name Kubernetes labels it with)."""
        return {"kubernetes.io/metadata.name": self.name} if self.standalone else {STACK_LABEL: self.name}

    def display(self, service: str) -> str:
        """``STACK_service`` as Docker names a stack's services; a standalone one by its name."""
        return service if self.standalone else f"{self.name}_{service}"


@dataclass(slots=True)
class Service:
    """One compose service while its objects are built."""

    stack: Stack
    name: str  # as written in the file
    spec: JSON
    pod: JSON = field(default_factory=dict)  # the pod template's spec
    container: JSON = field(default_factory=dict)  # the one container of the task
    pod_labels: dict[str, str] = field(default_factory=dict)
    pod_annotations: dict[str, str] = field(default_factory=dict)
    workload_annotations: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"services.{self.name}"

    @property
    def dns(self) -> str:
        return dns_name(self.name)

    @property
    def deploy(self) -> JSON:
        return dict(self.spec.get("deploy") or {})

    @property
    def mode(self) -> str:
        return str(self.deploy.get("mode") or "replicated")

    def selector(self) -> dict[str, str]:
        return {**self.stack.labels(), SERVICE_KEY: self.dns}

    def metadata(self, name: str | None = None, **extra: Any) -> JSON:
        labels = {**self.stack.labels(), SERVICE_KEY: self.dns, SERVICE_LABEL: self.stack.display(self.name)}
        return {"name": name or self.dns, "namespace": self.stack.name, "labels": labels, **extra}

    def warn(self, field_: str, reason: str) -> None:
        self.stack.warnings.add(self.where, field_, reason)


class Concern(Protocol):
    """One aspect of a service (ports, volumes, probes ...): it reads the service's fields,
    fills in the pod template, and may add objects of its own (Services, PVCs ...)."""

    fields: frozenset[str]  # the service keys it honours; any other key is warned about

    def apply(self, svc: Service) -> list[JSON]: ...

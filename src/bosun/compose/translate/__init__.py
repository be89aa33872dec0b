"""A loaded compose project as Kubernetes objects: the stack's shared objects (configs,
secrets), then, per service in dependency order, its Services, NetworkPolicy, PVCs, Ingress and
workload. Each concern honours the fields it declares; every other field is warned about."""

from __future__ import annotations

from dataclasses import dataclass, field

from bosun.compose import references
from bosun.compose.errors import Warnings
from bosun.compose.load import Project
from bosun.compose.translate import files
from bosun.compose.translate.autoscale import autoscaler
from bosun.compose.translate.container import Container
from bosun.compose.translate.context import JSON, Concern, Service, Stack, dns_name, is_dns_name
from bosun.compose.translate.depends import DependsOn
from bosun.compose.translate.health import Health
from bosun.compose.translate.ingress import Ingress
from bosun.compose.translate.modes import MODES
from bosun.compose.translate.networks import Networks
from bosun.compose.translate.placement import Placement
from bosun.compose.translate.ports import Ports
from bosun.compose.translate.resources import Resources
from bosun.compose.translate.volumes import Volumes

CONCERNS: tuple[Concern, ...] = (
    Container(), Ports(), Networks(), Volumes(), files.Files(), Health(), Resources(), Placement(), DependsOn(),
    Ingress(),
)
# Keys read by the modes (deploy, restart, scale) or that only select (profiles, x-*).
_OTHER_FIELDS = frozenset({"deploy", "restart", "scale", "profiles", "build"})
_DEPLOY_FIELDS = frozenset({"mode", "replicas", "labels", "placement", "resources", "restart_policy",
                            "update_config", "rollback_config", "endpoint_mode"})
_TOP_FIELDS = frozenset({"version", "name", "services", "networks", "volumes", "secrets", "configs"})


@dataclass(slots=True)
class ServiceObjects:
    name: str  # the compose name
    dns: str  # the object and DNS name
    workload: JSON
    objects: list[JSON]  # Services, NetworkPolicy, PVCs: written before the workload
    depends_on: dict[str, str]  # dependency's dns name -> condition
    after: list[JSON] = field(default_factory=list)  # its autoscaler: written once the workload exists


@dataclass(slots=True)
class Translation:
    stack: str
    shared: list[JSON]
    services: list[ServiceObjects]  # in dependency order
    warnings: Warnings = field(default_factory=Warnings)

    def all_objects(self) -> list[JSON]:
        out = list(self.shared)
        for s in self.services:
            out.extend(s.objects)
            out.append(s.workload)
            out.extend(s.after)
        return out


def _warn_unknown(svc: Service) -> None:
    honoured = set(_OTHER_FIELDS).union(*(c.fields for c in CONCERNS))
    for key in svc.spec:
        if key not in honoured and not str(key).startswith("x-"):
            svc.warn(str(key), "not supported by Bosun; ignored")
    for key in svc.deploy:
        if key not in _DEPLOY_FIELDS and not str(key).startswith("x-"):
            svc.warn(f"deploy.{key}", "not supported by Bosun; ignored")
    if svc.spec.get("build") and svc.spec.get("image"):
        svc.warn("build", "image builds are not supported yet; the image is pulled")


def _service(stack: Stack, name: str, spec: JSON) -> ServiceObjects:
    svc = Service(stack, name, spec)
    if not is_dns_name(name):
        svc.warn("", f"the name {name!r} is not a DNS label: its objects and DNS name are {svc.dns!r}")
    svc.pod["containers"] = [svc.container]
    objects: list[JSON] = []
    for concern in CONCERNS:
        objects.extend(concern.apply(svc))
    _warn_unknown(svc)
    if not svc.pod.get("volumes"):
        svc.pod.pop("volumes", None)
    if not svc.container.get("volumeMounts"):
        svc.container.pop("volumeMounts", None)
    template = {"metadata": {"labels": {**svc.pod_labels, **svc.selector()}, "annotations": svc.pod_annotations},
                "spec": svc.pod}
    mode = MODES.get(svc.mode)
    if mode is None:
        svc.warn("deploy.mode", f"{svc.mode!r} is unknown; running as replicated")
        mode = MODES["replicated"]
    workload = mode.workload(svc, template)
    deps = {d: str(v["condition"]) for d, v in
            ((d, dict(v)) for d, v in _depends(spec).items())}
    hpa = autoscaler(svc, workload)
    return ServiceObjects(name, svc.dns, workload, objects, deps, [hpa] if hpa else [])


def _depends(spec: JSON) -> dict[str, JSON]:
    return {dns_name(d): dict(v or {}) for d, v in (spec.get("depends_on") or {}).items()}


def translate(project: Project, stack_name: str, nodes: int = 1, standalone: bool = False) -> Translation:
    """Every object of the stack ``stack_name`` (its namespace). ``nodes`` sizes global jobs;
    ``standalone`` services (``bosun service create``) carry no stack label."""
    stack = Stack(stack_name, project, nodes, standalone, warnings=project.warnings)
    for key in project.model:
        if key not in _TOP_FIELDS and not str(key).startswith("x-"):
            stack.warnings.add("", str(key), "not supported by Bosun; ignored")
    shared = [*files.stack_objects(stack, files.CONFIGS, stack.config_names),
              *files.stack_objects(stack, files.SECRETS, stack.secret_names)]
    services = project.services
    out = [_service(stack, name, services[name]) for name in references.order(services)]
    present = {s.dns for s in out}
    for s in out:
        s.depends_on = {d: c for d, c in s.depends_on.items() if d in present}
    return Translation(stack_name, shared, out, stack.warnings)

"""``service update --publish-add/--publish-rm``: the published ports of a service's Service,
changed in place, as the compose translation writes them (node ports at the number written,
listed in the published-ports annotation: :mod:`bosun.api.published`)."""

from __future__ import annotations

from typing import Any

from bosun.api import published as mesh
from bosun.compose import normalize
from bosun.swarm.flags import publish

JSON = dict[str, Any]


def _matches(spec: str, port: JSON) -> bool:
    number, _, proto = spec.partition("/")
    if proto and str(port.get("protocol") or "TCP").lower() != proto.lower():
        return False
    return number.isdigit() and int(number) in (port.get("nodePort"), port.get("targetPort"), port.get("port"))


def change_ports(service: JSON, add: list[str], remove: list[str]) -> None:
    """Mutate ``service`` (a Service object): ports removed, then ports added (a port already
    there for the same target is replaced); the annotation lists every published port."""
    spec = service.setdefault("spec", {})
    annotations = service.setdefault("metadata", {}).setdefault("annotations", {})
    ports: list[JSON] = [p for p in spec.get("ports") or [] if not any(_matches(r, p) for r in remove)]
    meshed = 0
    for entry in normalize.ports([publish(a) for a in add], "--publish-add"):
        if entry.get("mode") == "host":
            continue  # the task's own port on its node (change_host_ports), not the mesh
        meshed += 1
        target, proto = int(entry["target"]), str(entry["protocol"]).upper()
        port: JSON = {"name": f"{proto.lower()}-{target}", "port": target, "targetPort": target, "protocol": proto}
        if entry.get("published") is not None:
            port["nodePort"] = int(entry["published"])
        ports = [p for p in ports if (p.get("port"), p.get("protocol")) != (target, proto)] + [port]
    spec["ports"] = ports
    listed = [(int(p["nodePort"]), int(p.get("targetPort") or p["port"]), str(p.get("protocol") or "TCP").lower())
              for p in ports if p.get("nodePort")]
    if listed:
        annotations[mesh.ANNOTATION] = mesh.format_ports(listed)
    else:
        annotations.pop(mesh.ANNOTATION, None)
    published = bool(listed) or bool(meshed)
    if not ports:
        # No port left: headless again, so the service's name still resolves (to its tasks).
        for key in ("ports", "type", "externalTrafficPolicy", "clusterIPs"):
            spec.pop(key, None)
        spec["clusterIP"] = "None"
        return
    if spec.get("clusterIP") == "None":
        # A headless Service (a service without ports) cannot get node ports: it becomes a
        # virtual-IP one, which the caller must create anew (a cluster IP cannot be added).
        spec.pop("clusterIP")
        spec.pop("clusterIPs", None)
    spec["type"] = "NodePort" if published else "ClusterIP"
    if not published:
        spec.pop("externalTrafficPolicy", None)
        for p in ports:
            p.pop("nodePort", None)


def change_host_ports(container: JSON, add: list[str], remove: list[str]) -> None:
    """``mode=host`` ports: a hostPort on the task's container port (only the nodes running a
    task answer, as Swarm's host mode); ``--publish-rm`` of the published number drops it."""
    ports: list[JSON] = []
    for p in container.get("ports") or []:
        if p.get("hostPort") and any(r.partition("/")[0] == str(p["hostPort"]) for r in remove):
            p = {k: v for k, v in p.items() if k != "hostPort"}
        ports.append(p)
    for entry in normalize.ports([publish(a) for a in add], "--publish-add"):
        if entry.get("mode") != "host" or entry.get("published") is None:
            continue
        target, proto = int(entry["target"]), str(entry["protocol"]).upper()
        ports = [p for p in ports if (p.get("containerPort"), p.get("protocol", "TCP")) != (target, proto)]
        ports.append({"containerPort": target, "protocol": proto, "hostPort": int(entry["published"])})
    container["ports"] = ports


def needs_recreate(before: JSON, after: JSON) -> bool:
    """A Service that changed between headless and virtual-IP must be deleted and created."""
    was = (before.get("spec") or {}).get("clusterIP") == "None"
    return was != ((after.get("spec") or {}).get("clusterIP") == "None")

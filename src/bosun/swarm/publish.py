"""``service update --publish-add/--publish-rm``: the published ports of a service's Service,
changed in place (node ports in range; others kept in the published-ports annotation, as
the compose translation does)."""

from __future__ import annotations

from typing import Any

from bosun.compose import normalize
from bosun.compose.translate.ports import NODE_PORT_RANGE, PUBLISHED_ANNOTATION
from bosun.swarm.flags import publish

JSON = dict[str, Any]


def _matches(spec: str, port: JSON) -> bool:
    number, _, proto = spec.partition("/")
    if proto and str(port.get("protocol") or "TCP").lower() != proto.lower():
        return False
    return number.isdigit() and int(number) in (port.get("nodePort"), port.get("targetPort"), port.get("port"))


def change_ports(service: JSON, add: list[str], remove: list[str]) -> list[str]:
    """Mutate ``service`` (a Service object); return warnings about ports kept as annotations."""
    spec = service.setdefault("spec", {})
    meta = service.setdefault("metadata", {})
    annotations = meta.setdefault("annotations", {})
    kept: list[str] = []
    for item in filter(None, str(annotations.get(PUBLISHED_ANNOTATION) or "").split(",")):
        kept_pub, _, rest = item.partition(":")  # "8443:443/tcp"
        kept_target, _, kept_proto = rest.partition("/")
        if any(r.partition("/")[0] in (kept_pub, kept_target) for r in remove):
            remove = [*remove, f"{kept_target}/{kept_proto}"]  # its Service port goes too
        else:
            kept.append(item)
    ports: list[JSON] = [p for p in spec.get("ports") or [] if not any(_matches(r, p) for r in remove)]
    warnings: list[str] = []
    for entry in normalize.ports([publish(a) for a in add], "--publish-add"):
        target, proto = int(entry["target"]), str(entry["protocol"]).upper()
        pub = entry.get("published")
        port: JSON = {"name": f"{proto.lower()}-{target}", "port": target, "targetPort": target, "protocol": proto}
        if pub is not None and int(pub) in NODE_PORT_RANGE:
            port["nodePort"] = int(pub)
        elif pub is not None:
            kept.append(f"{pub}:{target}/{proto.lower()}")
            warnings.append(f"published port {pub} is outside the node port range {NODE_PORT_RANGE.start}-"
                            f"{NODE_PORT_RANGE.stop - 1}: the server allocates a node port")
        ports = [p for p in ports if (p.get("port"), p.get("protocol")) != (target, proto)] + [port]
    spec["ports"] = ports
    if kept:
        annotations[PUBLISHED_ANNOTATION] = ",".join(kept)
    else:
        annotations.pop(PUBLISHED_ANNOTATION, None)
    published = bool(kept) or any(p.get("nodePort") for p in ports) or bool(add)
    if not ports:
        # No port left: headless again, so the service's name still resolves (to its tasks).
        for key in ("ports", "type", "externalTrafficPolicy", "clusterIPs"):
            spec.pop(key, None)
        spec["clusterIP"] = "None"
        return warnings
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
    return warnings


def needs_recreate(before: JSON, after: JSON) -> bool:
    """A Service that changed between headless and virtual-IP must be deleted and created."""
    was = (before.get("spec") or {}).get("clusterIP") == "None"
    return was != ((after.get("spec") or {}).get("clusterIP") == "None")

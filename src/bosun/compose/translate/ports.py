"""How a service is reached: a Service named after it (``http://db:5432`` works in the
stack's namespace), published ports as node ports at the number written (any number, as
Swarm's routing mesh: see :mod:`bosun.api.published`), host-mode ports as hostPorts (only the
nodes running a task answer), network aliases as more Services over the same pods, and
``endpoint_mode: dnsrr`` as a headless one."""

from __future__ import annotations

import json

from bosun.api import published as mesh
from bosun.compose import normalize
from bosun.compose.translate.context import JSON, Service, dns_name

PUBLISHED_ANNOTATION = mesh.ANNOTATION  # "8080:80/tcp,..." as the user wrote them


def _expose(svc: Service) -> list[JSON]:
    out = []
    for item in svc.spec.get("expose") or []:
        port, _, proto = str(item).partition("/")
        lo, _, hi = port.partition("-")
        for p in range(int(lo), int(hi or lo) + 1):
            out.append({"target": p, "protocol": proto or "tcp"})
    return out


def _service_object(svc: Service, name: str, ports: list[JSON], headless: bool, node_ports: bool,
                    published: list[str]) -> JSON:
    spec: JSON = {"selector": svc.selector(), "ports": ports}
    if headless:
        spec["clusterIP"] = "None"
    elif node_ports:
        spec["type"] = "NodePort"
    meta = svc.metadata(name)
    if published:
        meta["annotations"] = {PUBLISHED_ANNOTATION: ",".join(published)}
    if not ports:
        spec.pop("ports")
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec}


class Ports:
    fields = frozenset({"ports", "expose"})

    def apply(self, svc: Service) -> list[JSON]:
        declared = normalize.ports(svc.spec.get("ports"), svc.where)
        endpoint_mode = str(svc.deploy.get("endpoint_mode") or "vip")
        container_ports: dict[tuple[int, str], JSON] = {}
        service_ports: list[JSON] = []
        seen: set[tuple[int, str]] = set()
        published: list[str] = []
        node_ports = False
        for p in [*declared, *_expose(svc)]:
            target, proto = int(p["target"]), str(p.get("protocol") or "tcp").upper()
            cp = container_ports.setdefault((target, proto), {"containerPort": target, "protocol": proto})
            pub = p.get("published")
            if p.get("host_ip"):
                svc.warn("ports.host_ip", f"{p['host_ip']}: ports are published on every address of the node")
            if pub is not None and p.get("mode") == "host":
                cp["hostPort"] = int(pub)
                continue
            port_number = target if (target, proto) not in seen else int(pub or target)
            if (port_number, proto) in seen:
                continue
            seen.add((port_number, proto))
            entry: JSON = {"name": f"{proto.lower()}-{port_number}", "port": port_number,
                           "targetPort": target, "protocol": proto}
            if pub is not None:
                if endpoint_mode == "dnsrr":
                    svc.warn("ports", f"published port {pub}: a dnsrr service cannot publish through the "
                                      "routing mesh (Docker refuses it too); use mode: host")
                else:
                    published.append(f"{pub}:{target}/{proto.lower()}")
                    node_ports = True
                    entry["nodePort"] = int(pub)
            service_ports.append(entry)
        if container_ports:
            svc.container["ports"] = list(container_ports.values())
        headless = endpoint_mode == "dnsrr" or not service_ports
        if endpoint_mode == "dnsrr":
            svc.workload_annotations["bosun.io/endpoint-mode"] = "dnsrr"
        objects = [_service_object(svc, svc.dns, service_ports, headless, node_ports, published)]
        plain = [{k: v for k, v in p.items() if k != "nodePort"} for p in service_ports]
        for alias in self._aliases(svc):
            objects.append(_service_object(svc, alias, plain, headless, False, []))
        return objects

    @staticmethod
    def _aliases(svc: Service) -> list[str]:
        out: list[str] = []
        for net, spec in (svc.spec.get("networks") or {}).items():
            for alias in (spec or {}).get("aliases") or []:
                name = dns_name(str(alias))
                if name != str(alias):
                    svc.warn(f"networks.{net}.aliases", f"{alias!r} is not a DNS label; served as {name!r}")
                if name != svc.dns and name not in out:
                    out.append(name)
        if out:
            svc.workload_annotations["bosun.io/aliases"] = json.dumps(out)
        return out

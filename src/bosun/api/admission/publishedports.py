"""Published ports outside the node-port range may not take a port the nodes' agents serve on.

Kubernetes keeps node ports in 30000-32767 so that none lands on a port of the node itself; a
published port (:mod:`bosun.api.published`) may be any number, so this plugin refuses the
ones the cluster's own agents listen on (each Node's ``daemonEndpoints.kubeletEndpoint``): a
service published on 10250 would take the agent's logs, exec and stats port on every node. Two
services publishing one port are refused by the node-port allocator (:mod:`.serviceips`).
"""

from __future__ import annotations

from bosun.api import errors, published
from bosun.api.admission.base import CREATE, UPDATE, Operation, Reader, Request
from bosun.api.registry import Resource, must_by_plural

SERVICES = must_by_plural("", "v1", "services")
NODES = must_by_plural("", "v1", "nodes")


def _agent_ports(nodes: list[dict[str, object]]) -> set[int]:
    out = set()
    for node in nodes:
        status = node.get("status")
        ends = status.get("daemonEndpoints") if isinstance(status, dict) else None
        kubelet = ends.get("kubeletEndpoint") if isinstance(ends, dict) else None
        port = kubelet.get("Port") if isinstance(kubelet, dict) else None
        if isinstance(port, int) and port:
            out.add(port)
    return out


class PublishedPorts:
    name = "PublishedPorts"
    mutating = False

    def __init__(self, reader: Reader) -> None:
        self.reader = reader

    def handles(self, res: Resource, operation: Operation, subresource: str | None) -> bool:
        return res == SERVICES and operation in (CREATE, UPDATE) and subresource is None

    async def admit(self, req: Request) -> None:
        ports = [(i, p["nodePort"]) for i, p in enumerate((req.obj.get("spec") or {}).get("ports") or [])
                 if isinstance(p, dict) and isinstance(p.get("nodePort"), int)
                 and not published.in_range(p["nodePort"])]
        if not ports:
            return
        nodes, _, _ = await self.reader.list(NODES, None)
        taken = _agent_ports(nodes)
        refused = [errors.invalid(f"spec.ports[{i}].nodePort", port, f"port {port} is the node agent's own port "
                                  "on the cluster's nodes: publish another one")
                   for i, port in ports if port in taken]
        if refused:
            raise errors.invalid_object(req.res.kind, req.name, refused, req.res.group)

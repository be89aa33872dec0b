"""Published ports: the Swarm routing mesh on Kubernetes' NodePort, at the number the user wrote.

``docker service create -p 8080:80`` answers on port 8080 of every node, whatever the number.
Bosun writes such a port as what Kubernetes already means by it, a ``NodePort`` Service port
whose ``nodePort`` is 8080, so the node's service proxy (``service-nodeports``), the allocator
(one reservation per port, create-if-absent in the store: two services can never both have
8080, even through two API servers) and ``kubectl get svc`` (``80:8080/TCP``) all treat it as
any node port, with no second representation to keep in step.

Kubernetes keeps node ports inside ``--service-node-port-range`` (30000-32767) so that they
cannot land on a port the node itself uses. A Service may step outside that range only for a
port it says it publishes, in the annotation :data:`ANNOTATION` (``"8080:80/tcp,..."``,
published:target/protocol as the user wrote them): a plain Kubernetes Service keeps the usual
range and error, and the exception is visible on the object (``kubectl describe``).

A second Service port with a server-chosen node port besides the published one (what an
annotation read by the proxy would have needed) would have opened a port nobody asked for on
every node; Swarm opens none.
"""

from __future__ import annotations

from typing import Any

ANNOTATION = "bosun.io/published-ports"
NODE_PORT_RANGE = (30000, 32767)
PROTOCOLS = ("tcp", "udp", "sctp")

Obj = dict[str, Any]


class BadPublished(ValueError):
    """The annotation is not a list of ``published:target/protocol``."""


def parse(text: str) -> list[tuple[int, int, str]]:
    """``"8080:80/tcp,53:53/udp"`` -> ``[(8080, 80, "tcp"), (53, 53, "udp")]``."""
    out = []
    for item in filter(None, (i.strip() for i in text.split(","))):
        pub, colon, rest = item.partition(":")
        target, _, proto = rest.partition("/")
        proto = (proto or "tcp").lower()
        if not colon or not pub.isdigit() or not target.isdigit() or proto not in PROTOCOLS:
            raise BadPublished(f"{item!r} is not published:target/protocol (e.g. 8080:80/tcp)")
        if not 1 <= int(pub) <= 65535 or not 1 <= int(target) <= 65535:
            raise BadPublished(f"{item!r}: ports must be between 1 and 65535, inclusive")
        out.append((int(pub), int(target), proto))
    return out


def format_ports(ports: list[tuple[int, int, str]]) -> str:
    return ",".join(f"{pub}:{target}/{proto}" for pub, target, proto in ports)


def declared(obj: Obj) -> set[tuple[int, str]]:
    """(published port, protocol) pairs the object's annotation declares; none when it is
    malformed (validation says why)."""
    meta = obj.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    text = annotations.get(ANNOTATION) if isinstance(annotations, dict) else None
    if not text:
        return set()
    try:
        return {(pub, proto) for pub, _, proto in parse(str(text))}
    except BadPublished:
        return set()


def in_range(port: int) -> bool:
    lo, hi = NODE_PORT_RANGE
    return lo <= port <= hi

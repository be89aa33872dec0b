"""What a hollow node looks like to the API: its Node object, its Lease, its fake addresses.

Schedulers and controllers read nodes only through these objects, so a hollow node must carry
everything a real kubelet reports (labels, capacity, conditions, nodeInfo, addresses) or
their behaviour under test would differ from production.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bosun.api.quantity import parse_quantity

Obj = dict[str, Any]

NODE_LEASE_NAMESPACE = "kube-node-lease"
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
# Node InternalIPs are never contacted; they only have to be unique and look plausible.
_NODE_NET = ipaddress.IPv4Network("10.200.0.0/16")
# Each node gets a /24 of pod addresses from this range (32,768 nodes at most).
_POD_NET = ipaddress.IPv4Network("10.128.0.0/9")
MAX_NODES = 32_768


_clock: tuple[int, str] = (0, "")


def rfc3339(when: datetime | None = None) -> str:
    """Now (or ``when``) to the second; now is formatted once per second, not once per pod."""
    global _clock
    if when is not None:
        return when.strftime("%Y-%m-%dT%H:%M:%SZ")
    second = int(time.time())
    if _clock[0] != second:
        _clock = (second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return _clock[1]


def micro_time(when: datetime | None = None) -> str:
    """metav1.MicroTime, the format of a Lease's renewTime."""
    return (when or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class NodeShape:
    """The capacity and placement labels every node of one hollow cluster shares."""

    cpu: str = "4"
    memory: str = "16Gi"
    pods: int = 110
    ephemeral_storage: str = "100Gi"
    zones: int = 3
    arch: str = "amd64"
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[Obj] = field(default_factory=list)

    def __post_init__(self) -> None:
        for what, value in (("cpu", self.cpu), ("memory", self.memory),
                            ("ephemeral-storage", self.ephemeral_storage)):
            try:
                parse_quantity(value)
            except Exception as exc:
                raise ValueError(f"{what}: {value!r} is not a quantity") from exc
        if self.pods < 1:
            raise ValueError("pods: must be at least 1")
        if self.zones < 1:
            raise ValueError("zones: must be at least 1")


def node_name(prefix: str, index: int) -> str:
    return f"{prefix}-{index}"


def node_ip(index: int) -> str:
    # Skip the network address; wrap inside the /16 for absurdly many nodes.
    return str(_NODE_NET.network_address + 1 + index % (_NODE_NET.num_addresses - 2))


def pod_cidr(index: int) -> str:
    base = _POD_NET.network_address + (index % MAX_NODES) * 256
    return f"{base}/24"


def pod_ip(index: int, seq: int) -> str:
    """The ``seq``-th address handed out on node ``index`` (.1 to .254, then reused)."""
    base = _POD_NET.network_address + (index % MAX_NODES) * 256
    return str(base + 1 + seq % 254)


def zone_of(index: int, zones: int) -> str:
    return f"zone-{index % zones}"


def node_labels(name: str, index: int, shape: NodeShape) -> dict[str, str]:
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": shape.arch,
        "topology.kubernetes.io/zone": zone_of(index, shape.zones),
        "node.kubernetes.io/instance-type": "hollow",
    }
    labels.update(shape.labels)
    return labels


def ready_conditions(now: str) -> list[Obj]:
    """The conditions a healthy kubelet posts."""
    def cond(kind: str, status: str, reason: str, message: str) -> Obj:
        return {"type": kind, "status": status, "lastHeartbeatTime": now, "lastTransitionTime": now,
                "reason": reason, "message": message}

    return [
        cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        cond("Ready", "True", "KubeletReady", "kubelet is posting ready status (hollow node)"),
    ]


def node_status(name: str, index: int, shape: NodeShape, now: str | None = None) -> Obj:
    now = now or rfc3339()
    resources = {"cpu": shape.cpu, "memory": shape.memory, "pods": str(shape.pods),
                 "ephemeral-storage": shape.ephemeral_storage}
    return {
        "capacity": dict(resources),
        "allocatable": dict(resources),
        "conditions": ready_conditions(now),
        "addresses": [{"type": "InternalIP", "address": node_ip(index)},
                      {"type": "Hostname", "address": name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "machineID": f"hollow{index:026d}",
            "systemUUID": f"00000000-0000-0000-0000-{index:012d}",
            "bootID": f"hollow-boot-{index}",
            "kernelVersion": "6.1.0-hollow",
            "osImage": "Bosun hollow node",
            "containerRuntimeVersion": "hollow://0.1.0",
            "kubeletVersion": "v1.32.0-bosun-hollow",
            "kubeProxyVersion": "v1.32.0-bosun-hollow",
            "operatingSystem": "linux",
            "architecture": shape.arch,
        },
        "images": [],
    }


def build_node(name: str, index: int, shape: NodeShape) -> Obj:
    spec: Obj = {"podCIDR": pod_cidr(index), "podCIDRs": [pod_cidr(index)]}
    if shape.taints:
        spec["taints"] = [dict(t) for t in shape.taints]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": node_labels(name, index, shape),
                     "annotations": {"bosun.io/hollow": "true"}},
        "spec": spec,
        "status": node_status(name, index, shape),
    }


def build_lease(node: str, node_uid: str | None, duration_seconds: int) -> Obj:
    """The node's heartbeat Lease, owned by its Node so it goes when the Node goes."""
    meta: Obj = {"name": node, "namespace": NODE_LEASE_NAMESPACE}
    if node_uid:
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": node, "uid": node_uid}]
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": meta,
        "spec": {"holderIdentity": node, "leaseDurationSeconds": duration_seconds, "renewTime": micro_time()},
    }


def is_ready(node: Obj) -> bool:
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


# -- command-line spellings -------------------------------------------------------------------

def parse_labels(text: str) -> dict[str, str]:
    """``k=v,k2=v2`` (as kubectl label takes them; spaces around names and values do not count)."""
    out: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, eq, value = part.partition("=")
        if not eq or not key:
            raise ValueError(f"label {part!r}: expected key=value")
        out[key.strip()] = value.strip()
    return out


def parse_taints(text: str) -> list[Obj]:
    """``k=v:Effect`` or ``k:Effect``, comma-separated (as kubectl taint takes them)."""
    out: list[Obj] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        head, colon, effect = part.rpartition(":")
        if not colon or not head:
            raise ValueError(f"taint {part!r}: expected key=value:Effect")
        if effect not in TAINT_EFFECTS:
            raise ValueError(f"taint {part!r}: effect must be one of {', '.join(TAINT_EFFECTS)}")
        key, eq, value = head.partition("=")
        if not key:
            raise ValueError(f"taint {part!r}: empty key")
        taint: Obj = {"key": key, "effect": effect}
        if eq:
            taint["value"] = value
        out.append(taint)
    return out

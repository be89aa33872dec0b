"""Pure functions from a pod spec to what the runtime needs (resources, QoS, names).

Kept free of I/O so that the rules (how limits become cgroup numbers, which QoS class a pod
gets) are unit-tested on their own.
"""

from __future__ import annotations

from typing import Any

from bosun.agent.runtime.base import PortMapping, PullPolicy, Resources
from bosun.api.quantity import cpu_millis, to_bytes

Pod = dict[str, Any]
CPU_PERIOD_US = 100_000
MIN_SHARES = 2


def container_resources(container: dict[str, Any]) -> Resources:
    res = container.get("resources") or {}
    limits = res.get("limits") or {}
    requests = res.get("requests") or {}
    out = Resources()
    if "cpu" in limits:
        out.cpu_quota_us = max(1000, cpu_millis(limits["cpu"]) * CPU_PERIOD_US // 1000)
    cpu_req = requests.get("cpu", limits.get("cpu"))
    if cpu_req is not None:
        out.cpu_shares = max(MIN_SHARES, cpu_millis(cpu_req) * 1024 // 1000)
    if "memory" in limits:
        out.memory_limit_bytes = to_bytes(limits["memory"])
    mem_req = requests.get("memory", limits.get("memory"))
    if mem_req is not None:
        out.memory_request_bytes = to_bytes(mem_req)
    return out


def pod_resources(pod: Pod) -> Resources:
    """The pod cgroup: sums of the containers' limits (unlimited if any container is)."""
    containers = (pod.get("spec") or {}).get("containers") or []
    parts = [container_resources(c) for c in containers]
    out = Resources(cpu_shares=max(MIN_SHARES, sum(p.cpu_shares for p in parts)))
    if parts and all(p.cpu_quota_us is not None for p in parts):
        out.cpu_quota_us = sum(p.cpu_quota_us or 0 for p in parts)
    if parts and all(p.memory_limit_bytes is not None for p in parts):
        out.memory_limit_bytes = sum(p.memory_limit_bytes or 0 for p in parts)
    return out


def qos_class(pod: Pod) -> str:
    """Guaranteed / Burstable / BestEffort, by Kubernetes' rules over cpu and memory."""
    spec = pod.get("spec") or {}
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    any_set = False
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        limits = res.get("limits") or {}
        requests = res.get("requests") or {}
        for name in ("cpu", "memory"):
            req, lim = requests.get(name), limits.get(name)
            if req is not None or lim is not None:
                any_set = True
            if lim is None:
                guaranteed = False
            elif req is not None and str(req) != str(lim):
                conv = cpu_millis if name == "cpu" else to_bytes
                if conv(req) != conv(lim):
                    guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def pull_policy(container: dict[str, Any]) -> PullPolicy:
    value = container.get("imagePullPolicy")
    if value in {p.value for p in PullPolicy}:
        return PullPolicy(value)
    image = str(container.get("image") or "")
    tag = image.rsplit("/", 1)[-1]
    return PullPolicy.ALWAYS if ":" not in tag or tag.endswith(":latest") else PullPolicy.IF_NOT_PRESENT


def ports(pod: Pod) -> list[PortMapping]:
    out = []
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("containerPort"):
                out.append(PortMapping(int(p["containerPort"]), int(p.get("hostPort") or 0),
                                       str(p.get("protocol") or "TCP"), str(p.get("hostIP") or "")))
    return out


def host_aliases(pod: Pod) -> list[tuple[str, list[str]]]:
    return [(str(a.get("ip")), [str(h) for h in a.get("hostnames") or []])
            for a in (pod.get("spec") or {}).get("hostAliases") or [] if a.get("ip")]


def hostname(pod: Pod) -> str:
    spec = pod.get("spec") or {}
    return str(spec.get("hostname") or (pod.get("metadata") or {}).get("name") or "")[:63]


def find_port(container: dict[str, Any], port: int | str) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"port {port!r} not found in container {container.get('name')!r}")

"""Node registration, status and the Lease heartbeat.

The Lease (kube-node-lease/<node>, renewed every 2 s) is the cheap "I am alive" signal the
node lifecycle controller watches; the Node status (capacity, conditions) is written less
often, and at once when a condition changes, as kubelet does.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import platform
import socket
from datetime import UTC, datetime
from typing import Any

from bosun.agent import hostinfo
from bosun.agent.config import AgentConfig
from bosun.api.registry import must_by_plural
from bosun.client.errors import ApiError
from bosun.client.rest import TRANSPORT_ERRORS, Client

log = logging.getLogger(__name__)

VERSION = "v1.32.0-bosun"
# Where this node keeps local-path volumes, for the provisioner to put in PersistentVolumes.
LOCAL_PATH_ROOT = "bosun.io/local-path-root"


NODES = must_by_plural("", "v1", "nodes")
LEASES = must_by_plural("coordination.k8s.io", "v1", "leases")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


CONDITIONS = (
    # type, reason when False, reason when True, message False, message True
    ("MemoryPressure", "KubeletHasSufficientMemory", "KubeletHasInsufficientMemory",
     "kubelet has sufficient memory available", "kubelet has insufficient memory available"),
    ("DiskPressure", "KubeletHasNoDiskPressure", "KubeletHasDiskPressure",
     "kubelet has no disk pressure", "kubelet has disk pressure"),
    ("PIDPressure", "KubeletHasSufficientPID", "KubeletHasInsufficientPID",
     "kubelet has sufficient PID available", "kubelet has insufficient PID available"),
)


class NodeManager:
    def __init__(self, client: Client, config: AgentConfig, node_ip: str, runtime_name: str) -> None:
        self.client = client
        self.config = config
        self.node_ip = node_ip
        self.runtime_name = runtime_name
        self.kubelet_port = 0
        self.uid = ""
        self._conditions: dict[str, dict[str, Any]] = {}

    # -- the object -------------------------------------------------------------------------------

    def labels(self) -> dict[str, str]:
        labels = {
            "kubernetes.io/hostname": self.config.node_name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": hostinfo.go_arch(),
            "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": hostinfo.go_arch(),
        }
        if self.config.role:
            labels[f"node-role.kubernetes.io/{self.config.role}"] = ""
        labels.update(self.config.labels)
        return labels

    def capacity(self) -> dict[str, str]:
        total_disk, _ = hostinfo.disk(self.config.data_dir)
        mem = hostinfo.meminfo().get("MemTotal", 0)
        return {"cpu": str(hostinfo.cpu_count()), "memory": f"{mem // 1024}Ki",
                "pods": str(hostinfo.MAX_PODS), "ephemeral-storage": f"{total_disk // 1024}Ki"}

    def _conditions_now(self) -> list[dict[str, Any]]:
        now = _now()
        p = hostinfo.pressure(self.config.data_dir)
        values = {"MemoryPressure": p.memory, "DiskPressure": p.disk, "PIDPressure": p.pid}
        out = []
        for ctype, r_false, r_true, m_false, m_true in CONDITIONS:
            on = values[ctype]
            out.append(self._condition(ctype, "True" if on else "False", r_true if on else r_false,
                                       m_true if on else m_false, now))
        out.append(self._condition("Ready", "True", "KubeletReady", "kubelet is posting ready status", now))
        return out

    def _condition(self, ctype: str, status: str, reason: str, message: str, now: str) -> dict[str, Any]:
        prev = self._conditions.get(ctype)
        since = prev["lastTransitionTime"] if prev and prev["status"] == status else now
        cond = {"type": ctype, "status": status, "reason": reason, "message": message,
                "lastHeartbeatTime": now, "lastTransitionTime": since}
        self._conditions[ctype] = cond
        return cond

    def status(self) -> dict[str, Any]:
        cap = self.capacity()
        uname = platform.uname()
        return {
            "capacity": cap,
            "allocatable": dict(cap),
            "addresses": [{"type": "InternalIP", "address": self.node_ip},
                          {"type": "Hostname", "address": socket.gethostname()}],
            "conditions": self._conditions_now(),
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet_port}},
            "nodeInfo": {
                "machineID": hostinfo.machine_id(), "systemUUID": hostinfo.machine_id(),
                "bootID": _boot_id(), "kernelVersion": uname.release, "osImage": hostinfo.os_image(),
                "containerRuntimeVersion": f"{self.runtime_name}://bosun", "kubeletVersion": VERSION,
                "kubeProxyVersion": VERSION, "operatingSystem": "linux", "architecture": hostinfo.go_arch(),
            },
        }

    # -- writes -------------------------------------------------------------------------------------

    async def register(self) -> None:
        """Create the Node, or take over an existing one of that name (a re-joining node)."""
        annotations = {LOCAL_PATH_ROOT: str(self.config.volumes_dir.resolve())}
        body = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": self.config.node_name, "labels": self.labels(), "annotations": annotations},
                "spec": {}}
        try:
            node = await self.client.create(NODES, body)
        except ApiError as e:
            if e.status != 409:
                raise
            node = await self.client.patch(NODES, self.config.node_name,
                                           {"metadata": {"labels": self.labels(), "annotations": annotations}})
        self.uid = str(node["metadata"].get("uid") or "")
        await self.update_status()

    async def ensure_pod_cidr(self, preferred: str, explicit: bool) -> str:
        """The node's spec.podCIDR: kept when the Node already has one (it is immutable),
        else ``preferred`` (when not ``explicit``, moved to the next free /16 if another
        node has it already). There is no API-side allocator yet, so the agent claims one."""
        node = await self.client.get(NODES, self.config.node_name)
        current = str((node.get("spec") or {}).get("podCIDR") or "")
        if current:
            if explicit and current != preferred:
                log.warning("node %s keeps its podCIDR %s (asked for %s)", self.config.node_name, current, preferred)
            return current
        cidr = preferred
        if not explicit:
            nodes = (await self.client.list(NODES))["items"]
            taken = {str((n.get("spec") or {}).get("podCIDR") or "") for n in nodes}
            cidr = next_free_cidr(preferred, taken)
        await self.client.patch(NODES, self.config.node_name, {"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}})
        return cidr

    async def update_status(self) -> None:
        await self.client.patch(NODES, self.config.node_name, {"status": self.status()}, subresource="status")

    async def renew_lease(self) -> None:
        name = self.config.node_name
        spec = {"holderIdentity": name, "leaseDurationSeconds": self.config.lease_duration_seconds,
                "renewTime": _micro_now()}
        try:
            await self.client.patch(LEASES, name, {"spec": spec}, "kube-node-lease")
        except ApiError as e:
            if e.status != 404:
                raise
            owner = [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": self.uid}] if self.uid else []
            await self.client.create(LEASES, {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                              "metadata": {"name": name, "namespace": "kube-node-lease",
                                                           "ownerReferences": owner},
                                              "spec": spec}, "kube-node-lease")

    async def run(self) -> None:
        """Heartbeat forever; an unreachable API server only delays the next beat."""
        loop = asyncio.get_running_loop()
        next_status = loop.time() + self.config.node_status_interval
        last = [c["status"] for c in self._conditions.values()]
        while True:
            try:
                await self.renew_lease()
                now = loop.time()
                current = [c["status"] for c in self._conditions_now()]
                if now >= next_status or current != last:
                    await self.update_status()
                    last, next_status = current, now + self.config.node_status_interval
            except asyncio.CancelledError:
                raise
            except (ApiError, *TRANSPORT_ERRORS) as e:  # type: ignore[misc]
                log.warning("node heartbeat failed: %s", e)
            await asyncio.sleep(self.config.lease_interval)


def next_free_cidr(preferred: str, taken: set[str]) -> str:
    """``preferred`` or the next network of its size not in ``taken`` (10.88/16, 10.89/16...)."""
    net = ipaddress.ip_network(preferred, strict=False)
    for _ in range(256):
        if str(net) not in taken:
            return str(net)
        nxt = int(net.network_address) + net.num_addresses
        if nxt + net.num_addresses > int(ipaddress.IPv4Address("10.255.255.255")) + 1:
            break
        net = ipaddress.ip_network(f"{ipaddress.ip_address(nxt)}/{net.prefixlen}")
    return str(ipaddress.ip_network(preferred, strict=False))


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""

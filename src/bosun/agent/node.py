"""Node registration, status and the Lease heartbeat.

The Lease (kube-node-lease/<node>, renewed every 2 s) is the cheap "I am alive" signal the
node lifecycle controller watches; the Node status (capacity, conditions) is written less
often, and at once when a condition changes, as kubelet does.
"""

from __future__ import annotations

import asyncio
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
WAITING = "network not ready: waiting for the node IPAM controller to assign spec.podCIDR"
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
        # Why the node cannot run pods yet ("" = it can): reported as Ready=False.
        self.not_ready = ""

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
        if self.not_ready:
            out.append(self._condition("Ready", "False", "KubeletNotReady", self.not_ready, now))
        else:
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
        """Create the Node, or take over an existing one of that name (a re-joining node).
        An explicit podCIDR (``--pod-cidr``) goes into the new Node itself, so the IPAM
        controller finds it taken instead of racing to give the node another."""
        annotations = {LOCAL_PATH_ROOT: str(self.config.volumes_dir.resolve())}
        explicit = self.config.pod_cidr
        spec = {"podCIDR": explicit, "podCIDRs": [explicit]} if explicit else {}
        body = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": self.config.node_name, "labels": self.labels(), "annotations": annotations},
                "spec": spec}
        try:
            node = await self.client.create(NODES, body)
        except ApiError as e:
            if e.status != 409:
                raise
            node = await self.client.patch(NODES, self.config.node_name,
                                           {"metadata": {"labels": self.labels(), "annotations": annotations}})
            if explicit:
                node = await self._claim_pod_cidr(node, explicit)
        self.uid = str(node["metadata"].get("uid") or "")
        self.not_ready = "" if pod_cidr_of(node) else WAITING
        await self.update_status()

    async def _claim_pod_cidr(self, node: dict[str, Any], cidr: str) -> dict[str, Any]:
        """Set ``cidr`` on an existing Node that has none; spec.podCIDR never changes once
        set (the API refuses), so a Node that has one keeps it."""
        current = pod_cidr_of(node)
        if not current:
            try:
                return await self.client.patch(NODES, self.config.node_name,
                                               {"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}})
            except ApiError as e:
                if e.status != 422:  # the IPAM controller was first
                    raise
                node = await self.client.get(NODES, self.config.node_name)
                current = pod_cidr_of(node)
        if current != cidr:
            log.warning("node %s keeps its podCIDR %s (asked for %s)", self.config.node_name, current, cidr)
        return node

    async def wait_pod_cidr(self, poll: float = 0.25, max_poll: float = 3.0) -> str:
        """The node's spec.podCIDR, once the node IPAM controller (or ``--pod-cidr``) has
        set it. Meanwhile the node is Ready=False, saying why (with the controller's own
        reason when it has given one, e.g. an exhausted cluster CIDR). Asked quickly at first
        (the controller usually answers within milliseconds), then more slowly."""
        said = ""
        while True:
            node = await self.client.get(NODES, self.config.node_name)
            cidr = pod_cidr_of(node)
            if cidr:
                if self.not_ready:
                    self.not_ready = ""
                    await self.update_status()
                return cidr
            why = WAITING
            for c in (node.get("status") or {}).get("conditions") or []:
                if c.get("type") == "NetworkUnavailable" and c.get("status") == "True":
                    why = f"{WAITING}: {c.get('reason')}: {c.get('message')}"
            if why != said:
                log.warning("node %s: %s", self.config.node_name, why)
                said = self.not_ready = why
                await self.update_status()
            await asyncio.sleep(poll)
            poll = min(poll * 1.5, max_poll)

    async def update_status(self) -> None:
        # Strategic: conditions merge by type, so those other writers own (NetworkUnavailable
        # of the IPAM controller) stay.
        await self.client.patch(NODES, self.config.node_name, {"status": self.status()}, subresource="status",
                                patch_type="strategic")

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


def pod_cidr_of(node: dict[str, Any]) -> str:
    spec = node.get("spec") or {}
    return str(spec.get("podCIDR") or next(iter(spec.get("podCIDRs") or []), ""))


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""

"""The agent's settings, in one place so that `bosun agent`, `bosun up` and tests agree."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class AgentConfig:
    node_name: str
    data_dir: Path
    labels: dict[str, str] = field(default_factory=dict)
    role: str = "worker"
    node_ip: str = ""  # "" = the address that routes to the API server
    # HTTPS endpoint for logs (and later exec/stats) that the API server proxies to.
    listen_host: str = "0.0.0.0"
    listen_port: int = 10250  # 0 = any free port (tests)
    lease_interval: float = 2.0
    lease_duration_seconds: int = 40
    node_status_interval: float = 10.0
    # Exponential restart back-off: base doubling up to max (Kubernetes: 10 s to 5 min).
    backoff_base: float = 10.0
    backoff_max: float = 300.0
    # Image pull back-off after ErrImagePull (Kubernetes: 10 s doubling to 5 min).
    image_backoff_base: float = 10.0
    image_backoff_max: float = 300.0
    # How often the runtime is relisted to notice containers that ended.
    relist_interval: float = 1.0
    # The same for a driver that tells exits itself (ContainerEvents): a safety net only.
    events_relist_interval: float = 10.0
    # Where cluster DNS sends names outside the cluster (ADDR or ADDR:PORT); empty: the
    # nameservers of the node's /etc/resolv.conf.
    upstream_dns: list[str] = field(default_factory=list)
    # Container log rotation (kubelet's containerLogMaxSize / containerLogMaxFiles).
    container_log_max_bytes: int = 10 * 1024 * 1024
    container_log_max_files: int = 5
    # How often emptyDir sizeLimits are measured (eviction) and unused volumes cleaned up.
    housekeeping_interval: float = 10.0
    # Coalescing window for pod status writes.
    status_flush_interval: float = 0.2
    # An explicit spec.podCIDR, set by the agent on its own Node when that has none (a node
    # joining a bare API server without the node IPAM controller, or a range of its own).
    # "" = wait for the controller to assign one (the usual case).
    pod_cidr: str = ""
    # On stop, stop every pod's containers too (`bosun up`) instead of leaving them running.
    drain_on_stop: bool = False
    # Program the node's network (bosun.network.node.components: service proxy, ...). False
    # for agents that share a network namespace with other agents (tests on one host), which
    # would otherwise fight over one nftables table.
    node_network: bool = True
    # Sysctls beyond the safe set that pods may set (kubelet's --allowed-unsafe-sysctls;
    # patterns may end in *): a pod asking for another one is rejected (SysctlForbidden).
    allowed_unsafe_sysctls: list[str] = field(default_factory=list)
    # Where the node's nginx serves Ingresses; HTTP port 0: no ingress on this node.
    ingress_http_port: int = 80
    ingress_https_port: int = 443

    @property
    def pods_dir(self) -> Path:
        return self.data_dir / "pods"

    @property
    def volumes_dir(self) -> Path:
        """Where local-path PersistentVolumes of this node live (advertised on the Node)."""
        return self.data_dir / "volumes"

    @property
    def runtime_dir(self) -> Path:
        return self.data_dir / "runtime"

    @property
    def seccomp_dir(self) -> Path:
        """Where ``seccompProfile: {type: Localhost}`` profiles are looked up (kubelet's
        <root-dir>/seccomp)."""
        return self.data_dir / "seccomp"

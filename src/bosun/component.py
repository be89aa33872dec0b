"""What a control-plane component (a controller, the scheduler) is given to run.

Kept apart from :mod:`bosun.controlplane`, which starts the API server and supervises the
components: a controller needs only its client, its informers and the options, so importing
this module never pulls the API server (storage, HTTP, TLS) into a component's imports.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from bosun.client.events import EventRecorder
from bosun.client.rest import Client
from bosun.client.shared import SharedInformers

Component = Callable[["ComponentContext"], Awaitable[None]]


@dataclass
class ControlPlaneOptions:
    scheduling_strategy: str = "spread"
    # Controller names to run ("*" = all), as kube-controller-manager's --controllers.
    controllers: list[str] = field(default_factory=lambda: ["*"])
    scheduler: bool = True
    node_monitor_grace_period: float = 10.0
    pod_eviction_timeout: float = 10.0
    lease_duration: float = 15.0
    # The node whose agent runs beside this control plane (swarm init/join), and the URL other
    # machines reach its API on: both published in its manager Lease (bosun.membership).
    node_name: str = ""
    advertise_url: str = ""
    # The HPA controller (kube-controller-manager's --horizontal-pod-autoscaler-* flags).
    hpa_sync_period: float = 15.0
    hpa_downscale_stabilization: float = 300.0
    hpa_tolerance: float = 0.1
    hpa_cpu_initialization_period: float = 300.0
    hpa_initial_readiness_delay: float = 30.0
    # The CA certificate and key the CSR signer issues certificates with (kube-controller-
    # manager's --cluster-signing-cert-file/--cluster-signing-key-file); None: no signing.
    cluster_signing: tuple[Path, Path] | None = None
    # Components call the API in-process (no TLS/sockets/HTTP); BOSUN_LOCAL_TRANSPORT=0 turns it off.
    local_transport: bool = field(default_factory=lambda: os.environ.get("BOSUN_LOCAL_TRANSPORT", "1") != "0")


@dataclass
class ComponentContext:
    client: Client
    informers: SharedInformers
    options: ControlPlaneOptions
    _recorders: dict[str, EventRecorder] = field(default_factory=dict)

    def recorder(self, component: str) -> EventRecorder:
        rec = self._recorders.get(component)
        if rec is None:
            rec = self._recorders[component] = EventRecorder(self.client, component)
        return rec

    async def close(self) -> None:
        for rec in self._recorders.values():
            await rec.close()

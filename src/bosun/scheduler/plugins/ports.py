"""Host ports: a node cannot give the same protocol/port to two pods (unless their host IPs
differ and neither is the wildcard)."""

from __future__ import annotations

import numpy as np

from bosun.scheduler.framework import CycleState, FilterResult
from bosun.scheduler.podinfo import PodInfo
from bosun.scheduler.snapshot import Snapshot

WILDCARD = ("", "0.0.0.0", "::")


def conflicts(ip: str, used: list[str]) -> bool:
    return ip in WILDCARD or any(u in WILDCARD or u == ip for u in used)


class NodePorts:
    name = "NodePorts"

    def relevant(self, pod: PodInfo) -> bool:
        return bool(pod.host_ports)

    def filter(self, pod: PodInfo, snap: Snapshot, state: CycleState) -> FilterResult:
        ok = np.ones(snap.cap, bool)
        for proto, port, ip in pod.host_ports:
            for idx, used in snap.ports.get((proto, port), {}).items():
                if conflicts(ip, used):
                    ok[idx] = False
        return FilterResult(ok, "node(s) didn't have free ports for the requested pod ports")

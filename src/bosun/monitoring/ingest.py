"""What the history records from one node's Summary API document and from pod statuses.

Names follow Prometheus' conventions (base units, ``_total`` for counters); every pod series
carries ``namespace``, ``pod`` and ``node`` labels, every node series ``node``. A custom
metric keeps its own name and labels, plus ``namespace`` and ``pod`` (the pod's own labels
win over the exporter's, as Prometheus' ``honor_labels: false`` does).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

Sample = tuple[str, dict[str, str], float]

NODE_CPU = "node_cpu_usage_cores"
NODE_MEMORY = "node_memory_working_set_bytes"
NODE_FS_USED = "node_fs_used_bytes"
NODE_FS_CAPACITY = "node_fs_capacity_bytes"
NODE_RX = "node_network_receive_bytes_total"
NODE_TX = "node_network_transmit_bytes_total"
POD_CPU = "pod_cpu_usage_cores"
POD_MEMORY = "pod_memory_working_set_bytes"
POD_DISK = "pod_ephemeral_storage_used_bytes"
POD_RX = "pod_network_receive_bytes_total"
POD_TX = "pod_network_transmit_bytes_total"
CONTAINER_CPU = "container_cpu_usage_cores"
CONTAINER_MEMORY = "container_memory_working_set_bytes"
RESTARTS = "pod_container_restarts_total"
VOLUME_USED = "kubelet_volume_stats_used_bytes"
VOLUME_CAPACITY = "kubelet_volume_stats_capacity_bytes"
VOLUME_AVAILABLE = "kubelet_volume_stats_available_bytes"
# Names a custom metric may not take (they would mix with the agents' own figures).
RESERVED = frozenset({NODE_CPU, NODE_MEMORY, NODE_FS_USED, NODE_FS_CAPACITY, NODE_RX, NODE_TX, POD_CPU,
                      POD_MEMORY, POD_DISK, CONTAINER_CPU, CONTAINER_MEMORY, RESTARTS, VOLUME_USED,
                      VOLUME_CAPACITY, VOLUME_AVAILABLE, POD_RX, POD_TX})


def _num(d: Any, key: str) -> float | None:
    v = d.get(key) if isinstance(d, dict) else None
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def node_samples(node: str, summary: dict[str, Any]) -> Iterator[Sample]:
    s = summary.get("node") or {}
    labels = {"node": node}
    for name, part, key, scale in ((NODE_CPU, "cpu", "usageNanoCores", 1e-9),
                                   (NODE_MEMORY, "memory", "workingSetBytes", 1.0),
                                   (NODE_FS_USED, "fs", "usedBytes", 1.0),
                                   (NODE_FS_CAPACITY, "fs", "capacityBytes", 1.0),
                                   (NODE_RX, "network", "rxBytes", 1.0),
                                   (NODE_TX, "network", "txBytes", 1.0)):
        v = _num(s.get(part), key)
        if v is not None:
            yield name, labels, v * scale
    # A node's own samples (the HTTP checks of Services that are no pod's: bosun.agent.servicecheck)
    # keep their labels and get no ``node`` one: another node may make the same check tomorrow.
    for m in s.get("customMetrics") or []:
        name, value = m.get("name"), _num(m, "value")
        if isinstance(name, str) and value is not None and name not in RESERVED:
            own = m.get("labels") if isinstance(m.get("labels"), dict) else {}
            yield name, {str(k): str(v) for k, v in own.items()}, value


def pod_samples(node: str, summary: dict[str, Any]) -> Iterator[Sample]:
    for entry in summary.get("pods") or []:
        ref = entry.get("podRef") or {}
        ns, pod = ref.get("namespace"), ref.get("name")
        if not ns or not pod:
            continue
        labels = {"namespace": str(ns), "pod": str(pod), "node": node}
        cpu = _num(entry.get("cpu"), "usageNanoCores")
        if cpu is not None:
            yield POD_CPU, labels, cpu * 1e-9
        mem = _num(entry.get("memory"), "workingSetBytes")
        if mem is not None:
            yield POD_MEMORY, labels, mem
        disk = _num(entry.get("ephemeral-storage"), "usedBytes")
        if disk is not None:
            yield POD_DISK, labels, disk
        for name, key in ((POD_RX, "rxBytes"), (POD_TX, "txBytes")):
            value = _num(entry.get("network"), key)
            if value is not None:
                yield name, labels, value
        for c in entry.get("containers") or []:
            clabels = {**labels, "container": str(c.get("name", ""))}
            cpu = _num(c.get("cpu"), "usageNanoCores")
            if cpu is not None:
                yield CONTAINER_CPU, clabels, cpu * 1e-9
            mem = _num(c.get("memory"), "workingSetBytes")
            if mem is not None:
                yield CONTAINER_MEMORY, clabels, mem
        yield from _volume_samples(entry, str(ns), node)
        for m in entry.get("customMetrics") or []:
            name = m.get("name")
            value = _num(m, "value")
            if not isinstance(name, str) or value is None or name in RESERVED:
                continue
            own = m.get("labels") if isinstance(m.get("labels"), dict) else {}
            yield name, {**{str(k): str(v) for k, v in own.items()}, "namespace": str(ns), "pod": str(pod)}, value


def _volume_samples(entry: dict[str, Any], ns: str, node: str) -> Iterator[Sample]:
    """A claim's usage, labelled as kubelet's (namespace, persistentvolumeclaim) and not by
    pod: two pods mounting one claim report one series."""
    for v in entry.get("volume") or []:
        claim = (v.get("pvcRef") or {}).get("name") if isinstance(v, dict) else None
        if not claim:
            continue
        labels = {"namespace": ns, "persistentvolumeclaim": str(claim), "node": node}
        for name, key in ((VOLUME_USED, "usedBytes"), (VOLUME_CAPACITY, "capacityBytes"),
                          (VOLUME_AVAILABLE, "availableBytes")):
            value = _num(v, key)
            if value is not None:
                yield name, labels, value


def pod_custom_samples(entry: dict[str, Any] | None, metric: str) -> Iterator[tuple[dict[str, str], float]]:
    """(labels, value) of one custom metric in one pod's Summary API entry (labels as the
    history keeps them)."""
    if not entry or metric in RESERVED:
        return
    ref = entry.get("podRef") or {}
    for m in entry.get("customMetrics") or []:
        value = _num(m, "value")
        if m.get("name") != metric or value is None:
            continue
        own = m.get("labels") if isinstance(m.get("labels"), dict) else {}
        yield {**{str(k): str(v) for k, v in own.items()}, "namespace": str(ref.get("namespace", "")),
               "pod": str(ref.get("name", ""))}, value


def restart_samples(pod: dict[str, Any]) -> Iterator[Sample]:
    m = pod.get("metadata") or {}
    status = pod.get("status") or {}
    node = (pod.get("spec") or {}).get("nodeName") or ""
    for c in status.get("containerStatuses") or []:
        count = c.get("restartCount")
        if isinstance(count, int):
            yield RESTARTS, {"namespace": str(m.get("namespace", "")), "pod": str(m.get("name", "")),
                             "container": str(c.get("name", "")), "node": str(node)}, float(count)

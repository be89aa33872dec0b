"""The history half of bench/metrics.py: the control plane's ingest, memory and queries for
``nodes`` nodes and ``pods`` pods, measured in this process on the code the API server runs
(the collector's sample extraction and :class:`MetricsHistory`), fed with Summary API
documents shaped as the agents send them (hollow nodes run no agent, so they serve none);
then PromQL through the query API's evaluator (a 1 h range query at 60 s steps, an instant
``group_left`` join of a namespace's pods) and the snapshot a server writes to its data dir
(its size on disk, write and read-back time)."""

from __future__ import annotations

import gc
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from _stats import percentile
from bosun.monitoring.history import HistoryConfig, MetricsHistory
from bosun.monitoring.ingest import node_samples, pod_samples, restart_samples
from bosun.monitoring.promql import parse
from bosun.monitoring.promql_eval import Evaluator, HistorySource
from bosun.monitoring.snapshot import FILENAME, copy_out, read, write

Obj = dict[str, Any]


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class Summaries:
    """The summaries of one round: ``pods`` pods (one container each) spread over ``nodes``
    nodes and ``namespaces`` namespaces, built once; :meth:`tick` moves the usage figures as
    a new round would (so the benchmark's own dict building is not what it measures)."""

    def __init__(self, nodes: int, pods: int, namespaces: int) -> None:
        self.docs: list[tuple[str, Obj]] = []
        self._cpu: list[Obj] = []
        per_node = max(pods // nodes, 1)
        for n in range(nodes):
            entries = []
            for i in range(per_node):
                p = n * per_node + i
                usage = {"usageNanoCores": 0}
                mem = {"workingSetBytes": 50_000_000 + p}
                self._cpu.append(usage)
                entries.append({"podRef": {"namespace": f"ns-{p % namespaces}", "name": f"pod-{p:06d}"},
                                "cpu": usage, "memory": mem, "ephemeral-storage": {"usedBytes": 4096},
                                "containers": [{"name": "app", "cpu": usage, "memory": mem}]})
            self.docs.append((f"hollow-{n:05d}", {
                "node": {"cpu": {"usageNanoCores": 10**9}, "memory": {"workingSetBytes": 2**33},
                         "fs": {"usedBytes": 10**10, "capacityBytes": 10**11},
                         "network": {"rxBytes": 0, "txBytes": 0}},
                "pods": entries}))

    def tick(self, tick: int) -> list[tuple[str, Obj]]:
        for p, usage in enumerate(self._cpu):
            usage["usageNanoCores"] = 1_000_000 * ((p + tick) % 500)
        for _, doc in self.docs:
            net = doc["node"]["network"]
            net["rxBytes"], net["txBytes"] = tick * 1000, tick * 500
        return self.docs


def restarts(pods: int, namespaces: int) -> list[Obj]:
    return [{"metadata": {"namespace": f"ns-{p % namespaces}", "name": f"pod-{p:06d}"},
             "spec": {"nodeName": "n"}, "status": {"containerStatuses": [{"name": "app", "restartCount": 0}]}}
            for p in range(pods)]


def ingest(history: MetricsHistory, docs: list[tuple[str, Obj]], restart_pods: list[list[Any]], t: float) -> int:
    """What the collector does with one round (Collector.collect after the agents answered)."""
    added = 0
    for node, summary in docs:
        added += history.add_many(node_samples(node, summary), t)
        added += history.add_many(pod_samples(node, summary), t)
    for samples in restart_pods:
        added += history.add_many(samples, t)
    return added


def run(nodes: int, pods: int, namespaces: int, ticks: int, queries: int) -> Obj:
    config = HistoryConfig()
    history = MetricsHistory(config)
    gc.collect()
    rss0 = rss_bytes()  # before the summaries too: what the collector holds of a round counts
    restart_pods = [list(restart_samples(p)) for p in restarts(pods, namespaces)]
    start = time.time() - ticks * config.resolution
    cpu_s = 0.0
    samples = 0
    # Summary documents are made outside the measured time (the collector gets them decoded).
    source = Summaries(nodes, pods, namespaces)
    for tick in range(ticks):
        docs = source.tick(tick)
        c0 = time.process_time()
        samples += ingest(history, docs, restart_pods, start + tick * config.resolution)
        cpu_s += time.process_time() - c0
    del source, docs
    gc.collect()
    rss = rss_bytes() - rss0
    pod_q, ns_q = [], []
    for i in range(queries):
        ns = f"ns-{i % namespaces}"
        pod = f"pod-{(i * 7919) % pods:06d}"
        t0 = time.perf_counter()
        res = history.query("pod_cpu_usage_cores", {"namespace": f"ns-{((i * 7919) % pods) % namespaces}",
                                                    "pod": pod})
        orjson.dumps([{"labels": r.labels, "points": r.points} for r in res])
        pod_q.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        res = history.query("pod_cpu_usage_cores", {"namespace": ns}, start=time.time() - 300)
        orjson.dumps([{"labels": r.labels, "points": r.points} for r in res])
        ns_q.append(time.perf_counter() - t0)
    pod_q.sort()
    ns_q.sort()
    # PromQL through the evaluator the query API uses, JSON-encoded as it answers.
    evaluator = Evaluator(HistorySource(history))
    range_q, instant_q = [], []
    hour = parse("sum by (namespace) (pod_cpu_usage_cores)")
    per_pod = parse('pod_cpu_usage_cores{namespace="ns-0"} / on(namespace, pod) group_left '
                    'pod_memory_working_set_bytes{namespace="ns-0"}')
    for _ in range(max(queries // 10, 5)):
        now = time.time()
        t0 = time.perf_counter()
        matrix = evaluator.evaluate_range(hour, now - 3600, now, 60)
        orjson.dumps([{"metric": m, "values": v} for m, v in matrix])
        range_q.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        orjson.dumps([{"metric": s.labels, "value": s.value} for s in evaluator.vector(per_pod)])
        instant_q.append(time.perf_counter() - t0)
    range_q.sort()
    instant_q.sort()
    # The snapshot a server writes to its data dir (and reads back at start).
    with tempfile.TemporaryDirectory(prefix="bench-history-") as tmp:
        path = Path(tmp) / FILENAME
        t0 = time.perf_counter()
        disk = write(path, copy_out(history), config.resolution, history.capacity)
        write_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        restored = read(path, MetricsHistory(config))
        read_s = time.perf_counter() - t0
    return {"series": len(history), "samples": samples, "ticks": ticks,
            "ingest_cpu_ms_per_1000": 1000 * cpu_s / samples * 1000,
            "ingest_cpu_s_per_round": cpu_s / ticks,
            "rings_bytes": history.memory_bytes(), "rss_bytes": rss, "disk_bytes": disk,
            "snapshot_write_s": write_s, "snapshot_read_s": read_s, "snapshot_series": restored,
            "promql_range_1h_p50_ms": percentile(range_q, 0.5) * 1000,
            "promql_range_1h_p99_ms": percentile(range_q, 0.99) * 1000,
            "promql_group_left_p50_ms": percentile(instant_q, 0.5) * 1000,
            "promql_group_left_p99_ms": percentile(instant_q, 0.99) * 1000,
            "query_pod_p50_ms": percentile(pod_q, 0.5) * 1000,
            "query_pod_p99_ms": percentile(pod_q, 0.99) * 1000,
            "query_namespace_5m_p50_ms": percentile(ns_q, 0.5) * 1000,
            "query_namespace_5m_p99_ms": percentile(ns_q, 0.99) * 1000,
            "pods_per_namespace": pods // namespaces}

"""The arithmetic and formats behind `kubectl top`: /proc parsing, CPU rates from two
readings, the metrics.k8s.io quantities, and how API requests are labelled for Prometheus."""

from __future__ import annotations

import os
from pathlib import Path

from bosun.agent import usage
from bosun.agent.stats import ContainerSample, Rates, Sample
from bosun.api import metrics
from bosun.api.instrumentation import classify
from bosun.api.quantity import parse_quantity

TICK = os.sysconf("SC_CLK_TCK")


def test_node_cpu_counts_busy_time_only(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    # user nice system idle iowait irq softirq steal guest guest_nice
    stat.write_text(f"cpu  {TICK} {TICK} {TICK} 999999 999999 {TICK} 0 0 0 0\ncpu0 1 2 3 4\nbtime 1\n")
    assert usage.node_cpu_ns(stat) == 4 * 1_000_000_000


def test_node_memory_working_set_excludes_free_and_inactive_file(tmp_path: Path) -> None:
    mem = tmp_path / "meminfo"
    mem.write_text("MemTotal:       1000 kB\nMemFree:         200 kB\nMemAvailable:    500 kB\n"
                   "Inactive(file):  100 kB\n")
    assert usage.node_memory(mem) == (1000 * 1024, 800 * 1024, 700 * 1024)
    live = usage.node_usage()
    assert live.cpu_ns > 0 and live.working_set_bytes > 0


def _c(cid: str, cpu_ns: int, started: float = 0.0) -> ContainerSample:
    return ContainerSample(id=cid, pod_uid="u", pod_name="p", namespace="ns", name="c", started_at=started,
                           cpu_ns=cpu_ns, working_set_bytes=1)


def test_rates_between_samples_and_for_new_containers() -> None:
    prev = Sample(time=100.0, node=usage.Usage(cpu_ns=0, working_set_bytes=0),
                  containers={"a": _c("a", 1_000_000_000)})
    cur = Sample(time=102.0, node=usage.Usage(cpu_ns=3_000_000_000, working_set_bytes=0),
                 containers={"a": _c("a", 3_000_000_000), "b": _c("b", 500_000_000, started=101.0)})
    r = Rates(cur, prev)
    assert r.node_nanocores() == 1_500_000_000
    assert r.container_nanocores(cur.containers["a"]) == (1_000_000_000, 2.0)
    # Started after the previous sample: measured over its own life.
    assert r.container_nanocores(cur.containers["b"]) == (500_000_000, 1.0)


def test_quantities_are_what_kubectl_top_parses() -> None:
    assert metrics.cpu_quantity(1_234_567) == "1234567n"
    assert parse_quantity(metrics.cpu_quantity(1_000_000_000)) == 1
    assert metrics.memory_quantity(2048 + 5) == "2Ki"
    assert metrics.window(10.0) == "10s" and metrics.window(1.5) == "1.5s"


def test_pod_metrics_shape() -> None:
    pod = {"metadata": {"name": "web", "namespace": "ns", "labels": {"app": "web"}, "uid": "u1"}}
    entry = {"containers": [{"name": "c", "cpu": {"time": "2026-01-01T00:00:00Z", "usageNanoCores": 5},
                             "memory": {"workingSetBytes": 4096}, "windowSeconds": 2.0}]}
    out = metrics.pod_metrics(pod, entry, 10.0)
    assert out["kind"] == "PodMetrics" and out["apiVersion"] == "metrics.k8s.io/v1beta1"
    assert out["metadata"]["labels"] == {"app": "web"} and out["metadata"]["namespace"] == "ns"
    assert out["timestamp"] == "2026-01-01T00:00:00Z" and out["window"] == "2s"
    assert out["containers"] == [{"name": "c", "usage": {"cpu": "5n", "memory": "4Ki"}}]


def test_requests_are_labelled_like_kube_apiserver() -> None:
    assert classify("GET", "/api/v1/namespaces/a/pods", False) == ("LIST", "", "v1", "pods", "")
    assert classify("GET", "/api/v1/namespaces/a/pods", True) == ("WATCH", "", "v1", "pods", "")
    assert classify("GET", "/api/v1/namespaces/a/pods/x", False) == ("GET", "", "v1", "pods", "")
    assert classify("PATCH", "/apis/apps/v1/namespaces/a/deployments/d/scale", False) == (
        "PATCH", "apps", "v1", "deployments", "scale")
    assert classify("DELETE", "/api/v1/namespaces/a/pods", False)[0] == "DELETECOLLECTION"
    assert classify("PUT", "/api/v1/namespaces/a/finalize", False) == ("PUT", "", "v1", "namespaces", "finalize")
    assert classify("GET", "/apis/metrics.k8s.io/v1beta1/nodes", False) == (
        "LIST", "metrics.k8s.io", "v1beta1", "nodes", "")
    # Made-up paths do not create new label values.
    assert classify("GET", "/apis/x.example/v1/things", False) == ("GET", "", "", "", "")
    assert classify("GET", "/healthz", False) == ("GET", "", "", "", "")

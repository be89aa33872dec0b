"""Autoscaling and the metrics history end to end, on a one-node harness cluster running real
containers (crun): `kubectl autoscale` makes a CPU HPA that scales a throttled CPU burner up
and, once the load stops and the HPA's own scale-down window (5 s, set through
autoscaling/v2's behavior) has passed, back down; a busybox httpd serving a static
Prometheus file drives a Pods-metric HPA through the custom metrics API; a pod serving
garbage gets a MetricsScrapeFailed event and harms no one; the history API and /federate
return what was recorded; an HPA aimed at nothing scalable says so in its conditions."""

from __future__ import annotations

import json
import re
import ssl
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.harness import NetCluster
from tests.harness.fixtures import requires_netns

pytestmark = [requires_netns, pytest.mark.timeout(420)]

# A short history grid and sync period keep the test quick; windows stay upstream's unless
# an HPA's behavior says otherwise.
SERVER_ARGS = ["--hpa-sync-period", "2", "--metrics-resolution", "2"]


@pytest.fixture(scope="module")
def cluster() -> Iterator[NetCluster]:
    with NetCluster(nodes=1, server_args=SERVER_ARGS) as c:
        yield c


@pytest.fixture
def ns(cluster: NetCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    name = "as-" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[-40:].strip("-")
    assert cluster.kubectl("create", "namespace", name).returncode == 0
    try:
        yield name
    finally:
        cluster.kubectl("delete", "namespace", name, "--wait=false")


def wait_for(what: str, check: Callable[[], Any], within: float = 120) -> Any:
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(1)
    raise AssertionError(f"{what}: not within {within}s (last: {last!r})")


def apply(cluster: NetCluster, ns: str, *objs: dict[str, Any]) -> None:
    out = cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                           "items": list(objs)}))
    assert out.returncode == 0, out.stderr


def deployment(name: str, command: list[str], *, cpu: str = "", annotations: dict[str, str] | None = None,
               volume: str = "") -> dict[str, Any]:
    container: dict[str, Any] = {"name": name, "image": "host", "command": command}
    if cpu:
        container["resources"] = {"requests": {"cpu": cpu}, "limits": {"cpu": cpu}}
    pod_spec: dict[str, Any] = {"terminationGracePeriodSeconds": 1, "containers": [container]}
    if volume:
        container["volumeMounts"] = [{"name": "load", "mountPath": "/load"}]
        pod_spec["volumes"] = [{"name": "load", "hostPath": {"path": volume, "type": "Directory"}}]
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}}, "template": {
                "metadata": {"labels": {"app": name}, "annotations": annotations or {}}, "spec": pod_spec}}}


def replicas(cluster: NetCluster, ns: str, name: str) -> int:
    d = cluster.kubectl_json("get", "deployment", name, "-n", ns)
    return int(d["spec"].get("replicas") or 0)


def hpa_row(cluster: NetCluster, ns: str, name: str) -> list[str]:
    out = cluster.kubectl("get", "hpa", name, "-n", ns, "--no-headers")
    assert out.returncode == 0, out.stderr
    return re.split(r"\s{2,}", out.stdout.strip())


def api_get(cluster: NetCluster, path: str) -> tuple[int, str]:
    ctx = ssl.create_default_context(cafile=cluster.ca_path)
    req = urllib.request.Request(cluster.url + path, headers={"Authorization": f"Bearer {cluster.token}"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def events(cluster: NetCluster, ns: str, reason: str) -> list[dict[str, Any]]:
    items = cluster.kubectl_json("get", "events", "-n", ns)["items"]
    return [e for e in items if e.get("reason") == reason]


def test_cpu_hpa_from_kubectl_autoscale_scales_up_then_down(cluster: NetCluster, ns: str, tmp_path: Path) -> None:
    load = tmp_path / "load"
    load.mkdir()
    # Each replica burns what its 100m limit lets it (about 100% of its request) until the
    # test creates /load/stop.
    burn = ["sh", "-c", "while [ ! -e /load/stop ]; do :; done; exec sleep 3600"]
    apply(cluster, ns, deployment("burn", burn, cpu="100m", volume=str(load)))
    out = cluster.kubectl("autoscale", "deployment", "burn", "-n", ns, "--min", "1", "--max", "3",
                          "--cpu-percent", "50")
    assert out.returncode == 0, out.stderr
    assert "horizontalpodautoscaler.autoscaling/burn autoscaled" in out.stdout

    wait_for("burn scaled to 3", lambda: replicas(cluster, ns, "burn") == 3, within=180)
    row = hpa_row(cluster, ns, "burn")
    assert row[1] == "Deployment/burn" and row[3:5] == ["1", "3"], row
    assert re.fullmatch(r"cpu: \d+%/50%", row[2]), row
    hpa = cluster.kubectl_json("get", "horizontalpodautoscalers.v2.autoscaling", "burn", "-n", ns)
    conditions = {c["type"]: c for c in hpa["status"]["conditions"]}
    assert conditions["ScalingActive"]["status"] == "True", conditions
    assert conditions["ScalingActive"]["reason"] == "ValidMetricFound", conditions
    assert [e for e in events(cluster, ns, "SuccessfulRescale") if "cpu resource utilization" in e["message"]]
    # The v1 view of the same object: kubectl autoscale's own version.
    v1 = cluster.kubectl_json("get", "horizontalpodautoscalers.v1.autoscaling", "burn", "-n", ns)
    assert v1["spec"]["targetCPUUtilizationPercentage"] == 50
    assert v1["status"]["currentCPUUtilizationPercentage"] >= 0

    # A scale-down window of 5 s (instead of upstream's 300 s) through autoscaling/v2's behavior.
    patch = {"spec": {"behavior": {"scaleDown": {"stabilizationWindowSeconds": 5}}}}
    out = cluster.kubectl("patch", "horizontalpodautoscalers.v2.autoscaling", "burn", "-n", ns, "--type", "merge",
                          "-p", json.dumps(patch))
    assert out.returncode == 0, out.stderr
    (load / "stop").touch()
    wait_for("burn back to 1", lambda: replicas(cluster, ns, "burn") == 1, within=180)
    assert [e for e in events(cluster, ns, "SuccessfulRescale") if "All metrics below target" in e["message"]]
    series = json.loads(api_get(cluster, "/metrics/history?metric=pod_cpu_usage_cores&match=namespace=" + ns)[1])
    assert series["series"] and all(s["labels"]["namespace"] == ns for s in series["series"])
    assert max(p[1] for s in series["series"] for p in s["points"]) > 0.05


METRICS_FILE = ("# TYPE queue_depth gauge\nqueue_depth{queue=\"jobs\"} 30\n"
                "# TYPE web_backlog gauge\nweb_backlog{deployment=\"web\"} 20\n")


def test_custom_metric_drives_hpa_and_malformed_metrics_harm_no_one(cluster: NetCluster, ns: str) -> None:
    serve = ["sh", "-c", f"mkdir -p /tmp/www && printf '{METRICS_FILE}' > /tmp/www/metrics && "
             "exec busybox httpd -f -p 8080 -h /tmp/www"]
    bad = ["sh", "-c", "mkdir -p /tmp/www && printf 'queue_depth{ this is not prometheus\\n' > /tmp/www/metrics && "
           "exec busybox httpd -f -p 8080 -h /tmp/www"]
    scrape = {"prometheus.io/scrape": "true", "prometheus.io/port": "8080"}
    apply(cluster, ns, deployment("web", serve, annotations=scrape), deployment("junk", bad, annotations=scrape),
          {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                    "minReplicas": 1, "maxReplicas": 4,
                    "metrics": [{"type": "Pods", "pods": {"metric": {"name": "queue_depth"},
                                                          "target": {"type": "AverageValue", "averageValue": "10"}}},
                                # Every web pod reports the Deployment's backlog: the object's is their sum.
                                {"type": "Object", "object": {
                                    "describedObject": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                                    "metric": {"name": "web_backlog"},
                                    "target": {"type": "Value", "value": "1000"}}}]}})
    # 30 per pod against 10: three pods (then 30 each again: the max of 4 is the limit).
    wait_for("web scaled up", lambda: replicas(cluster, ns, "web") >= 3, within=120)
    # Both metrics shown once the object's has been read too (the pods' one scaled it first);
    # the target as stored: canonical.
    wait_for("both metrics in TARGETS", lambda: re.fullmatch(r"30/10, \d+/1k", hpa_row(cluster, ns, "web")[2]),
             within=60)
    current = cluster.kubectl_json("get", "hpa", "web", "-n", ns)["status"]["currentMetrics"]
    backlog = next(m["object"] for m in current if m["type"] == "Object")
    assert backlog["describedObject"]["name"] == "web" and int(backlog["current"]["value"]) % 20 == 0, current
    raw = cluster.kubectl("get", "--raw",
                          f"/apis/custom.metrics.k8s.io/v1beta2/namespaces/{ns}/deployments.apps/web/web_backlog")
    assert raw.returncode == 0, raw.stderr
    assert json.loads(raw.stdout)["items"][0]["describedObject"]["kind"] == "Deployment"

    raw = cluster.kubectl("get", "--raw", f"/apis/custom.metrics.k8s.io/v1beta2/namespaces/{ns}/pods/*/queue_depth")
    assert raw.returncode == 0, raw.stderr
    items = json.loads(raw.stdout)["items"]
    assert items and {i["value"] for i in items} == {"30"} and all(i["describedObject"]["kind"] == "Pod" for i in items)
    listed = json.loads(cluster.kubectl("get", "--raw", "/apis/custom.metrics.k8s.io/v1beta2").stdout)
    assert "pods/queue_depth" in {r["name"] for r in listed["resources"]}

    failed = wait_for("junk's scrape event", lambda: events(cluster, ns, "MetricsScrapeFailed"), within=60)
    assert all(e["involvedObject"]["name"].startswith("junk-") for e in failed), failed
    assert "malformed" in failed[0]["message"], failed[0]

    status, text = api_get(cluster, "/federate?match[]=queue_depth")
    assert status == 200, text
    lines = [ln for ln in text.splitlines() if ln.startswith("queue_depth{") and f'namespace="{ns}"' in ln]
    assert lines and all(' 30.0 ' in ln and 'queue="jobs"' in ln for ln in lines), text
    assert not any("junk" in ln for ln in lines)
    query = urllib.parse.urlencode({"metric": "queue_depth", "match": f"namespace={ns}", "start": "-5m"})
    status, body = api_get(cluster, f"/metrics/history?{query}")
    assert status == 200, body
    series = json.loads(body)["series"]
    assert series and all(p[1] == 30.0 for s in series for p in s["points"])


def test_hpa_bad_targets_and_min_above_max(cluster: NetCluster, ns: str) -> None:
    def hpa(name: str, kind: str, api_version: str, lo: int = 1, hi: int = 3) -> dict[str, Any]:
        return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": name},
                "spec": {"scaleTargetRef": {"apiVersion": api_version, "kind": kind, "name": name},
                         "minReplicas": lo, "maxReplicas": hi}}

    out = cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(hpa("upside", "Deployment", "apps/v1", 5, 2)))
    assert out.returncode != 0
    assert "spec.maxReplicas" in out.stderr and "minReplicas" in out.stderr, out.stderr

    apply(cluster, ns, hpa("missing", "Deployment", "apps/v1"), hpa("daemons", "DaemonSet", "apps/v1"))
    for name, why in (("missing", "not found"), ("daemons", "no scale subresource")):
        def failed(name: str = name) -> dict[str, Any] | None:
            obj = cluster.kubectl_json("get", "hpa", name, "-n", ns)
            conds = {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}
            able = conds.get("AbleToScale")
            return able if able and able["status"] == "False" else None
        able = wait_for(f"{name}'s AbleToScale=False", failed, within=60)
        assert able["reason"] == "FailedGetScale" and why in able["message"], able
    assert {e["involvedObject"]["name"] for e in events(cluster, ns, "FailedGetScale")} == {"missing", "daemons"}

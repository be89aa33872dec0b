"""Table responses: the columns and cell texts ``kubectl get`` shows for realistic objects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests.unit.helpers import must_by_kind

from bosun.api.registry import Resource
from bosun.api.tables import human_duration, to_table

NOW = datetime(2024, 5, 10, 12, 0, 0, tzinfo=UTC)


def _ago(**kw: float) -> str:
    return (NOW - timedelta(**kw)).strftime("%Y-%m-%dT%H:%M:%SZ")



def _table(api_version: str, kind: str, objs: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    return to_table(must_by_kind(api_version, kind), objs, now=NOW, **kw)


def _cells(api_version: str, kind: str, obj: dict[str, Any]) -> list[Any]:
    cells: list[Any] = _table(api_version, kind, [obj])["rows"][0]["cells"]
    return cells


def _headers(api_version: str, kind: str, wide: bool = False) -> list[str]:
    cols = _table(api_version, kind, [])["columnDefinitions"]
    return [c["name"].upper() for c in cols if wide or c["priority"] == 0]


@pytest.mark.parametrize(
    "seconds, text",
    [
        (5, "5s"),
        (119, "119s"),
        (200, "3m20s"),
        (300, "5m"),
        (900, "15m"),
        (4 * 3600, "4h"),
        (5 * 3600 + 1800, "5h30m"),
        (20 * 3600, "20h"),
        (51 * 3600, "2d3h"),
        (30 * 86400, "30d"),
        (800 * 86400, "2y70d"),
        (-1, "0s"),
        (-5, "<invalid>"),
    ],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_column_headers_match_kubectl() -> None:
    assert _headers("v1", "Pod") == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert _headers("v1", "Pod", wide=True)[5:] == ["IP", "NODE", "NOMINATED NODE", "READINESS GATES"]
    assert _headers("apps/v1", "Deployment", wide=True) == [
        "NAME",
        "READY",
        "UP-TO-DATE",
        "AVAILABLE",
        "AGE",
        "CONTAINERS",
        "IMAGES",
        "SELECTOR",
    ]
    assert _headers("apps/v1", "DaemonSet") == [
        "NAME",
        "DESIRED",
        "CURRENT",
        "READY",
        "UP-TO-DATE",
        "AVAILABLE",
        "NODE SELECTOR",
        "AGE",
    ]
    assert _headers("batch/v1", "Job") == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert _headers("v1", "Service", wide=True) == [
        "NAME",
        "TYPE",
        "CLUSTER-IP",
        "EXTERNAL-IP",
        "PORT(S)",
        "AGE",
        "SELECTOR",
    ]
    assert _headers("v1", "Secret") == ["NAME", "TYPE", "DATA", "AGE"]
    assert _headers("v1", "Node") == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert _headers("v1", "Event") == ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert _headers("v1", "ServiceAccount") == ["NAME", "SECRETS", "AGE"]
    name = _table("v1", "ConfigMap", [])["columnDefinitions"][0]
    assert (name["name"], name["format"], name["type"]) == ("Name", "name", "string")


def _pod(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "web-0", "creationTimestamp": _ago(hours=2)},
        "spec": {"containers": [{"name": "app"}, {"name": "log"}], "nodeName": "node-1"},
        "status": {"phase": "Running", "podIP": "10.1.0.7", **status},
    }


def _running(name: str, restarts: int = 0, ready: bool = True, **extra: Any) -> dict[str, Any]:
    return {"name": name, "ready": ready, "restartCount": restarts, "state": {"running": {}}, **extra}


def test_running_pod_row_with_wide_columns() -> None:
    pod = _pod(containerStatuses=[_running("app"), _running("log")])
    assert _cells("v1", "Pod", pod) == [
        "web-0",
        "2/2",
        "Running",
        "0",
        "120m",
        "10.1.0.7",
        "node-1",
        "<none>",
        "<none>",
    ]


def test_crash_looping_pod_shows_reason_and_last_restart() -> None:
    pod = _pod(
        containerStatuses=[
            _running(
                "app", restarts=3, lastState={"terminated": {"finishedAt": _ago(minutes=5), "exitCode": 1}}
            ),
            {
                "name": "log",
                "ready": False,
                "restartCount": 0,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            },
        ]
    )
    ready, status, restarts = _cells("v1", "Pod", pod)[1:4]
    assert (ready, status, restarts) == ("1/2", "CrashLoopBackOff", "3 (5m ago)")


@pytest.mark.parametrize(
    "status, expected",
    [
        (
            {
                "phase": "Pending",
                "containerStatuses": [{"name": "app", "state": {"waiting": {"reason": "ContainerCreating"}}}],
            },
            "ContainerCreating",
        ),
        (
            {
                "phase": "Succeeded",
                "containerStatuses": [
                    {"name": "app", "state": {"terminated": {"reason": "Completed", "exitCode": 0}}}
                ],
            },
            "Completed",
        ),
        (
            {
                "phase": "Failed",
                "containerStatuses": [
                    {"name": "app", "state": {"terminated": {"reason": "Error", "exitCode": 2}}}
                ],
            },
            "Error",
        ),
        (
            {
                "phase": "Failed",
                "containerStatuses": [
                    {"name": "app", "state": {"terminated": {"exitCode": 137, "signal": 9}}}
                ],
            },
            "Signal:9",
        ),
        ({"phase": "Pending"}, "Pending"),
        ({"phase": "Failed", "reason": "Evicted"}, "Evicted"),
        (
            {
                "phase": "Pending",
                "initContainerStatuses": [
                    {"name": "i1", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                    {"name": "i2", "state": {"running": {}}},
                ],
            },
            "Init:1/3",
        ),
        (
            {
                "phase": "Pending",
                "initContainerStatuses": [
                    {"name": "i1", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
                ],
            },
            "Init:CrashLoopBackOff",
        ),
        (
            {
                "phase": "Pending",
                "initContainerStatuses": [
                    {"name": "i1", "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}
                ],
            },
            "Init:Error",
        ),
    ],
)
def test_pod_status_column(status: dict[str, Any], expected: str) -> None:
    pod = {
        "metadata": {"name": "p", "creationTimestamp": _ago(seconds=30)},
        "spec": {
            "containers": [{"name": "app"}],
            "initContainers": [{"name": "i1"}, {"name": "i2"}, {"name": "i3"}],
        },
        "status": status,
    }
    assert _cells("v1", "Pod", pod)[2] == expected


def test_terminating_pod_and_completed_row_condition() -> None:
    pod = _pod(containerStatuses=[_running("app"), _running("log")])
    pod["metadata"]["deletionTimestamp"] = _ago(seconds=3)
    assert _cells("v1", "Pod", pod)[2] == "Terminating"
    done = {
        "metadata": {"name": "d"},
        "spec": {"containers": [{"name": "c"}]},
        "status": {"phase": "Succeeded"},
    }
    row = _table("v1", "Pod", [done])["rows"][0]
    assert row["cells"][4] == "<unknown>"
    assert row["conditions"][0]["type"] == "Completed"


def test_include_object_modes() -> None:
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "resourceVersion": "7"},
        "data": {"a": "1", "b": "2"},
    }
    meta = _table("v1", "ConfigMap", [cm])
    assert meta["kind"] == "Table" and meta["apiVersion"] == "meta.k8s.io/v1"
    assert meta["rows"][0]["object"] == {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": cm["metadata"],
    }
    assert meta["rows"][0]["cells"] == ["c", 2, "<unknown>"]
    assert _table("v1", "ConfigMap", [cm], include_object="Object")["rows"][0]["object"] == cm
    assert "object" not in _table("v1", "ConfigMap", [cm], include_object="None")["rows"][0]


def test_deployment_and_replicaset_rows() -> None:
    spec = {
        "replicas": 3,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "spec": {
                "containers": [{"name": "app", "image": "nginx:1.25"}, {"name": "log", "image": "busybox"}]
            }
        },
    }
    dep = {
        "metadata": {"name": "web", "creationTimestamp": _ago(days=2, hours=3)},
        "spec": spec,
        "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2, "replicas": 3},
    }
    assert _cells("apps/v1", "Deployment", dep) == [
        "web",
        "2/3",
        3,
        2,
        "2d3h",
        "app,log",
        "nginx:1.25,busybox",
        "app=web",
    ]
    assert _cells("apps/v1", "ReplicaSet", dep)[:5] == ["web", 3, 3, 2, "2d3h"]


def test_job_and_cronjob_rows() -> None:
    job = {
        "metadata": {"name": "pi", "creationTimestamp": _ago(minutes=3)},
        "spec": {"completions": 1, "template": {"spec": {"containers": [{"name": "pi", "image": "perl"}]}}},
        "status": {
            "succeeded": 1,
            "startTime": _ago(minutes=3),
            "completionTime": _ago(minutes=2, seconds=20),
            "conditions": [{"type": "Complete", "status": "True"}],
        },
    }
    assert _cells("batch/v1", "Job", job)[:5] == ["pi", "Complete", "1/1", "40s", "3m"]
    cj = {
        "metadata": {"name": "tick", "creationTimestamp": _ago(days=1)},
        "spec": {
            "schedule": "*/5 * * * *",
            "jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}},
        },
        "status": {"active": [{"name": "tick-1"}], "lastScheduleTime": _ago(minutes=1)},
    }
    assert _cells("batch/v1", "CronJob", cj)[:7] == [
        "tick",
        "*/5 * * * *",
        "<none>",
        "<unset>",
        1,
        "60s",
        "24h",
    ]


def test_service_rows() -> None:
    svc = {
        "metadata": {"name": "web", "creationTimestamp": _ago(minutes=4)},
        "spec": {
            "type": "NodePort",
            "clusterIP": "10.96.0.10",
            "clusterIPs": ["10.96.0.10"],
            "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
            "selector": {"app": "web"},
        },
    }
    assert _cells("v1", "Service", svc) == [
        "web",
        "NodePort",
        "10.96.0.10",
        "<none>",
        "80:30080/TCP,53/UDP",
        "4m",
        "app=web",
    ]
    lb = {"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "clusterIP": "None", "ports": []}}
    assert _cells("v1", "Service", lb)[2:5] == ["None", "<pending>", "<none>"]


def test_node_rows() -> None:
    node = {
        "metadata": {
            "name": "n1",
            "creationTimestamp": _ago(days=10),
            "labels": {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "worker"},
        },
        "spec": {"unschedulable": True},
        "status": {
            "conditions": [
                {"type": "MemoryPressure", "status": "False"},
                {"type": "Ready", "status": "True"},
            ],
            "addresses": [{"type": "InternalIP", "address": "192.168.1.5"}],
            "nodeInfo": {
                "kubeletVersion": "v1.32.0",
                "osImage": "Debian GNU/Linux 12",
                "kernelVersion": "6.1.0",
                "containerRuntimeVersion": "crun://1.8",
            },
        },
    }
    assert _cells("v1", "Node", node) == [
        "n1",
        "Ready,SchedulingDisabled",
        "control-plane,worker",
        "10d",
        "v1.32.0",
        "192.168.1.5",
        "<none>",
        "Debian GNU/Linux 12",
        "6.1.0",
        "crun://1.8",
    ]
    assert _cells("v1", "Node", {"metadata": {"name": "n2"}})[1] == "Unknown"


def test_event_secret_namespace_and_default_rows() -> None:
    ev = {
        "metadata": {"name": "web-0.17a"},
        "type": "Warning",
        "reason": "BackOff",
        "involvedObject": {"kind": "Pod", "name": "web-0", "fieldPath": "spec.containers{app}"},
        "source": {"component": "kubelet", "host": "n1"},
        "message": "Back-off restarting\n",
        "firstTimestamp": _ago(minutes=30),
        "lastTimestamp": _ago(seconds=40),
        "count": 7,
    }
    assert _cells("v1", "Event", ev) == [
        "40s",
        "Warning",
        "BackOff",
        "pod/web-0",
        "spec.containers{app}",
        "kubelet, n1",
        "Back-off restarting",
        "30m",
        7,
        "web-0.17a",
    ]
    sec = {"metadata": {"name": "tls"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}}
    assert _cells("v1", "Secret", sec)[:3] == ["tls", "kubernetes.io/tls", 2]
    ns = {
        "metadata": {"name": "dev", "creationTimestamp": _ago(seconds=9)},
        "status": {"phase": "Terminating"},
    }
    assert _cells("v1", "Namespace", ns) == ["dev", "Terminating", "9s"]
    unknown = Resource("example.com", "v1", "Widget", "widgets", True)
    table = to_table(unknown, [{"metadata": {"name": "w", "creationTimestamp": _ago(hours=1)}}], now=NOW)
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Age"]
    assert table["rows"][0]["cells"] == ["w", "60m"]


def test_storage_and_endpoint_rows() -> None:
    pvc = {
        "metadata": {"name": "data"},
        "spec": {"volumeName": "pv-1", "storageClassName": "local"},
        "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}},
    }
    assert _cells("v1", "PersistentVolumeClaim", pvc)[:7] == [
        "data",
        "Bound",
        "pv-1",
        "1Gi",
        "RWO",
        "local",
        "<unset>",
    ]
    ep = {
        "metadata": {"name": "web"},
        "subsets": [{"addresses": [{"ip": f"10.0.0.{i}"} for i in range(5)], "ports": [{"port": 8080}]}],
    }
    assert _cells("v1", "Endpoints", ep)[1] == "10.0.0.0:8080,10.0.0.1:8080,10.0.0.2:8080 + 2 more..."
    assert _cells("v1", "Endpoints", {"metadata": {"name": "x"}})[1] == "<none>"

"""Pod manifests of the size real clusters store (~2.5 KB each).

A benchmark with toy objects measures HTTP overhead only; what users pay for is parsing,
validating, defaulting and encoding objects with several containers, env, probes and labels.
"""

from __future__ import annotations

from typing import Any

SEQ_ANNOTATION = "bench.bosun.dev/seq"
"""Each write stamps a sequence number here, so a watcher can tell which write it received."""


def _container(name: str, image: str, port: int, i: int) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": [f"--port={port}", "--log-level=info"],
        "ports": [{"name": f"{name}-http", "containerPort": port, "protocol": "TCP"}],
        "env": [
            {"name": "APP_ENV", "value": "production"},
            {"name": "APP_REPLICA", "value": str(i)},
            {"name": "DATABASE_URL", "value": "postgres://app@db.prod.svc.cluster.local:5432/app"},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        ],
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"cpu": "500m", "memory": "512Mi"},
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": port},
            "initialDelaySeconds": 10, "periodSeconds": 10, "failureThreshold": 3,
        },
        "readinessProbe": {
            "httpGet": {"path": "/ready", "port": port},
            "initialDelaySeconds": 2, "periodSeconds": 5,
        },
        "volumeMounts": [
            {"name": "config", "mountPath": "/etc/app", "readOnly": True},
            {"name": "cache", "mountPath": "/var/cache/app"},
        ],
    }


def make_pod(name: str, namespace: str, i: int, seq: int = 0) -> dict[str, Any]:
    """A three-container pod like a Deployment would stamp out."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                "app": "bench",
                "tier": "backend",
                "shard": str(i % 10),
                "app.kubernetes.io/name": "bench-api",
                "app.kubernetes.io/version": "1.4.2",
                "pod-template-hash": "5d8f7c9b6d",
            },
            "annotations": {
                SEQ_ANNOTATION: str(seq),
                "prometheus.io/scrape": "true",
                "prometheus.io/port": "9090",
            },
        },
        "spec": {
            "containers": [
                _container("api", "registry.example.com/team/api:1.4.2", 8080, i),
                _container("worker", "registry.example.com/team/worker:1.4.2", 8081, i),
                {
                    "name": "metrics",
                    "image": "registry.example.com/infra/exporter:0.9",
                    "ports": [{"name": "metrics", "containerPort": 9090}],
                    "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
                },
            ],
            "volumes": [
                {"name": "config", "configMap": {"name": "bench-config"}},
                {"name": "cache", "emptyDir": {}},
            ],
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                 "effect": "NoExecute", "tolerationSeconds": 300},
            ],
            "terminationGracePeriodSeconds": 30,
        },
    }


def touch(pod: dict[str, Any], seq: int) -> None:
    """The change an update makes: a new sequence stamp and a moving label, as a controller would."""
    pod["metadata"]["annotations"][SEQ_ANNOTATION] = str(seq)
    pod["metadata"]["labels"]["generation"] = str(seq % 1000)


def seq_of(obj: dict[str, Any]) -> int:
    return int(((obj.get("metadata") or {}).get("annotations") or {}).get(SEQ_ANNOTATION) or -1)

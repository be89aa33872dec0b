"""A kopf operator for examples/greeting-crd.yaml: each Greeting gets a ConfigMap of its own
(owned by it, so the garbage collector removes it with the Greeting) and a status.

Run it beside a cluster: ``KUBECONFIG=... kopf run --standalone -A examples/greeting-operator.py``,
or in a pod: there it uses the pod's ServiceAccount token and the in-cluster configuration
(KUBERNETES_SERVICE_HOST/PORT, the CA at /var/run/secrets/kubernetes.io/serviceaccount/ca.crt),
as kopf itself does; its account needs the RBAC of examples/greeting-operator-rbac.yaml.
"""

import os
from typing import Any

import kopf
import kubernetes


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        kubernetes.config.load_incluster_config()
    else:
        kubernetes.config.load_kube_config()
    settings.watching.server_timeout = 20


def _configmap(name: str, namespace: str, spec: Any) -> dict[str, Any]:
    body = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": f"{name}-greeting", "namespace": namespace},
            "data": {"message": spec.get("message", ""), "count": str(spec.get("count", 0))}}
    kopf.adopt(body)
    return body


@kopf.on.create("ops.example.com", "v1", "greetings")
def create(spec: Any, name: str, namespace: str, patch: kopf.Patch, **_: Any) -> dict[str, str]:
    kubernetes.client.CoreV1Api().create_namespaced_config_map(namespace, _configmap(name, namespace, spec))
    patch.status["phase"] = "Greeted"
    return {"configmap": f"{name}-greeting"}


@kopf.on.update("ops.example.com", "v1", "greetings", field="spec")
def update(spec: Any, name: str, namespace: str, patch: kopf.Patch, **_: Any) -> None:
    kubernetes.client.CoreV1Api().replace_namespaced_config_map(
        f"{name}-greeting", namespace, _configmap(name, namespace, spec))
    patch.status["observedMessage"] = spec.get("message")


@kopf.on.delete("ops.example.com", "v1", "greetings")
def delete(name: str, logger: Any, **_: Any) -> None:
    logger.info("goodbye %s", name)

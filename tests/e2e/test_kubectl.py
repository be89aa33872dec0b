"""Real kubectl (v1.32, /usr/bin/kubectl) against a real bosun API server."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import RunningServer

KUBECTL = "/usr/bin/kubectl"

class Kubectl:
    def __init__(self, kubeconfig: str, namespace: str, cache_dir: Path) -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.env = dict(os.environ, KUBECACHEDIR=str(cache_dir), HOME=str(cache_dir))

    def __call__(
        self, *args: str, input: str | None = None, check: bool = True, ns: bool = True
    ) -> subprocess.CompletedProcess[str]:
        cmd = [KUBECTL, "--kubeconfig", self.kubeconfig, *(["-n", self.namespace] if ns else []), *args]
        p = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=60, env=self.env)
        if check and p.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "-o", "json").stdout)


@pytest.fixture
def kubectl(api_server: RunningServer, namespace: str, tmp_path: Path) -> Iterator[Kubectl]:
    k = Kubectl(api_server.kubeconfig, namespace, tmp_path / "kubecache")
    k("apply", "-f", "-", input=f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}\n", ns=False)
    try:
        yield k
    finally:
        k("delete", "namespace", namespace, "--wait=false", ns=False, check=False)


DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: nginx:1.25
          ports: [{containerPort: 80}]
          env: [{name: A, value: "1"}, {name: B, value: "2"}]
        - name: sidecar
          image: busybox:1.36
          command: ["sleep", "3600"]
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 80}]
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  mode: fast
"""


def test_version_and_api_resources(kubectl: Kubectl) -> None:
    v = kubectl("version", "-o", "json", ns=False)
    assert json.loads(v.stdout)["serverVersion"]["major"] == "1"
    r = kubectl("api-resources", ns=False)
    assert "couldn't get resource list" not in r.stderr
    names = {line.split()[0] for line in r.stdout.splitlines()[1:]}
    for plural in ("pods", "services", "deployments", "statefulsets", "daemonsets", "jobs", "cronjobs",
                   "ingresses", "horizontalpodautoscalers", "leases", "nodes", "namespaces", "configmaps",
                   "secrets", "events", "endpoints", "persistentvolumeclaims", "persistentvolumes",
                   "replicasets"):
        assert plural in names, r.stdout


def test_apply_created_configured_unchanged(kubectl: Kubectl) -> None:
    out = kubectl("apply", "-f", "-", input=DEPLOYMENT).stdout
    assert "deployment.apps/web created" in out
    assert "service/web created" in out
    assert "configmap/settings created" in out
    assert "unchanged" in kubectl("apply", "-f", "-", input=DEPLOYMENT).stdout
    # Edit: new image for one container, drop an env var, change replicas.
    edited = DEPLOYMENT.replace("nginx:1.25", "nginx:1.27").replace(', {name: B, value: "2"}', "").replace(
        "replicas: 2", "replicas: 3")
    assert "deployment.apps/web configured" in kubectl("apply", "-f", "-", input=edited).stdout
    d = kubectl.json("get", "deployment", "web")
    containers = {c["name"]: c for c in d["spec"]["template"]["spec"]["containers"]}
    assert containers["web"]["image"] == "nginx:1.27"
    assert containers["sidecar"]["image"] == "busybox:1.36"
    assert [e["name"] for e in containers["web"]["env"]] == ["A"]
    assert d["spec"]["replicas"] == 3
    assert d["metadata"]["generation"] == 2
    # Defaults as Kubernetes sets them.
    assert d["spec"]["strategy"]["type"] == "RollingUpdate"
    assert d["spec"]["template"]["spec"]["restartPolicy"] == "Always"
    svc = kubectl.json("get", "service", "web")
    assert svc["spec"]["type"] == "ClusterIP"


def test_get_tables_and_wide(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", input=DEPLOYMENT)
    out = kubectl("get", "deploy,svc,cm", "-o", "wide").stdout
    assert "NAME" in out and "READY" in out and "UP-TO-DATE" in out and "AVAILABLE" in out
    assert "CONTAINERS" in out and "nginx:1.25,busybox:1.36" in out
    assert "service/web" in out and "ClusterIP" in out and "80/TCP" in out
    assert "configmap/settings" in out
    everything = kubectl("get", "all").stdout
    assert "deployment.apps/web" in everything and "service/web" in everything
    name_only = kubectl("get", "deploy", "-o", "name").stdout.split()
    assert name_only == ["deployment.apps/web"]


def test_pods_table_columns(kubectl: Kubectl) -> None:
    kubectl("run", "solo", "--image=busybox:1.36", "--restart=Never", "--", "sleep", "60")
    out = kubectl("get", "pods", "-o", "wide").stdout.splitlines()
    assert out[0].split()[:5] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert "IP" in out[0] and "NODE" in out[0]
    assert out[1].split()[:3] == ["solo", "0/1", "Pending"]


def test_invalid_objects_are_refused_with_field_errors(kubectl: Kubectl) -> None:
    bad = DEPLOYMENT.split("---")[0].replace("replicas: 2", "replicas: -3")
    p = kubectl("apply", "-f", "-", input=bad, check=False)
    assert p.returncode != 0
    assert "spec.replicas: Invalid value: -3: must be greater than or equal to 0" in p.stderr
    assert kubectl("get", "deploy", "-o", "name").stdout.strip() == ""
    unknown = DEPLOYMENT.split("---")[0].replace("replicas: 2", "replicaz: 2")
    p = kubectl("apply", "-f", "-", input=unknown, check=False)
    assert p.returncode != 0
    assert 'unknown field "spec.replicaz"' in p.stderr
    badname = DEPLOYMENT.split("---")[2].replace("name: settings", "name: Bad_Name")
    p = kubectl("apply", "-f", "-", input=badname, check=False)
    assert p.returncode != 0 and "metadata.name: Invalid value" in p.stderr


def test_scale_patch_label_and_delete(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", input=DEPLOYMENT)
    assert "scaled" in kubectl("scale", "deployment", "web", "--replicas=5").stdout
    assert kubectl.json("get", "deploy", "web")["spec"]["replicas"] == 5
    kubectl("patch", "deployment", "web", "-p",
            '{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox:1.37"}]}}}}')
    d = kubectl.json("get", "deploy", "web")
    images = {c["name"]: c["image"] for c in d["spec"]["template"]["spec"]["containers"]}
    assert images == {"web": "nginx:1.25", "sidecar": "busybox:1.37"}
    kubectl("patch", "deployment", "web", "--type=json", "-p",
            '[{"op":"replace","path":"/spec/replicas","value":1}]')
    assert kubectl.json("get", "deploy", "web")["spec"]["replicas"] == 1
    kubectl("label", "deployment", "web", "tier=frontend")
    assert kubectl("get", "deploy", "-l", "tier=frontend", "-o", "name").stdout.strip() == "deployment.apps/web"
    assert kubectl("get", "deploy", "-l", "tier=backend", "-o", "name").stdout.strip() == ""
    kubectl("annotate", "deployment", "web", "owner=team-a")
    assert kubectl.json("get", "deploy", "web")["metadata"]["annotations"]["owner"] == "team-a"
    assert 'deployment.apps "web" deleted' in kubectl("delete", "deployment", "web").stdout
    p = kubectl("get", "deployment", "web", check=False)
    assert p.returncode != 0 and 'deployments.apps "web" not found' in p.stderr


def test_get_watch_sees_changes(kubectl: Kubectl) -> None:
    cmd = [KUBECTL, "--kubeconfig", kubectl.kubeconfig, "-n", kubectl.namespace, "get", "configmaps", "-w",
           "--request-timeout=20s"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=kubectl.env)
    try:
        time.sleep(1.0)
        kubectl("apply", "-f", "-", input="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: watched}\ndata: {a: b}\n")
        deadline = time.time() + 20
        seen = ""
        assert proc.stdout is not None
        while time.time() < deadline:
            line = proc.stdout.readline()
            seen += line
            if "watched" in line:
                break
        assert "watched" in seen
    finally:
        proc.kill()
        proc.wait()


def test_namespace_deletion_removes_contents(kubectl: Kubectl, api_server: RunningServer) -> None:
    kubectl("apply", "-f", "-", input=DEPLOYMENT)
    kubectl("delete", "namespace", kubectl.namespace, "--timeout=30s", ns=False)
    p = kubectl("get", "namespace", kubectl.namespace, check=False, ns=False)
    assert p.returncode != 0 and "not found" in p.stderr
    p = kubectl("create", "configmap", "late", "--from-literal=a=b", check=False)
    assert p.returncode != 0


def test_bad_token_is_unauthorized(kubectl: Kubectl, tmp_path: Path) -> None:
    kc = yaml.safe_load(Path(kubectl.kubeconfig).read_text())
    kc["users"][0]["user"]["token"] = "not-the-token"
    bad = tmp_path / "bad-kubeconfig"
    bad.write_text(yaml.safe_dump(kc))
    p = subprocess.run([KUBECTL, "--kubeconfig", str(bad), "get", "pods"], capture_output=True, text=True,
                       timeout=30, env=kubectl.env)
    assert p.returncode != 0
    assert "Unauthorized" in p.stderr


def test_imperative_create_commands(kubectl: Kubectl) -> None:
    """kubectl's typed commands send protobuf bodies; they must work like the YAML path."""
    kubectl("create", "configmap", "cfg", "--from-literal=mode=fast")
    assert kubectl.json("get", "configmap", "cfg")["data"] == {"mode": "fast"}
    kubectl("create", "secret", "generic", "pw", "--from-literal=password=s3cret")
    import base64

    assert base64.b64decode(kubectl.json("get", "secret", "pw")["data"]["password"]) == b"s3cret"
    kubectl("create", "deployment", "d", "--image=nginx:1.25", "--replicas=3", "--port=80")
    d = kubectl.json("get", "deployment", "d")
    assert d["spec"]["replicas"] == 3 and d["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"
    kubectl("expose", "deployment", "d", "--port=80", "--type=NodePort")
    svc = kubectl.json("get", "service", "d")
    assert svc["spec"]["type"] == "NodePort" and 30000 <= svc["spec"]["ports"][0]["nodePort"] <= 32767
    kubectl("create", "job", "j", "--image=busybox:1.36", "--", "true")
    assert kubectl.json("get", "job", "j")["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    kubectl("create", "cronjob", "cj", "--image=busybox:1.36", "--schedule=*/5 * * * *")
    assert kubectl.json("get", "cronjob", "cj")["spec"]["schedule"] == "*/5 * * * *"
    other = f"{kubectl.namespace}-x"
    kubectl("create", "namespace", other, ns=False)
    try:
        assert kubectl.json("get", "namespace", other)["status"]["phase"] == "Active"
    finally:
        kubectl("delete", "namespace", other, "--wait=false", ns=False)


DEPRECATED = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: old
spec:
  selector:
    matchLabels: {app: old}
  template:
    metadata:
      labels: {app: old}
    spec:
      nodeSelector: {beta.kubernetes.io/os: linux}
      containers:
      - name: c
        image: busybox:1.36
        resources: {limits: {memory: 1500m, cpu: ".5"}}
"""


def test_deprecated_fields_are_accepted_with_upstreams_warnings(kubectl: Kubectl) -> None:
    p = kubectl("apply", "-f", "-", input=DEPRECATED)
    assert "deployment.apps/old created" in p.stdout
    assert ('Warning: spec.template.spec.nodeSelector[beta.kubernetes.io/os]: deprecated since v1.14; '
            'use "kubernetes.io/os" instead') in p.stderr
    assert ('Warning: spec.template.spec.containers[0].resources.limits[memory]: fractional byte value '
            '"1500m" is invalid, must be an integer') in p.stderr
    # Stored in canonical form; a re-apply of the same file changes nothing but still warns.
    limits = kubectl.json("get", "deployment", "old")["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert limits == {"limits": {"memory": "1500m", "cpu": "500m"}}
    again = kubectl("apply", "-f", "-", input=DEPRECATED)
    assert "deprecated since v1.14" in again.stderr
    # A pod without deprecated fields gets no warning.
    clean = kubectl("run", "fine", "--image=busybox:1.36", "--restart=Never")
    assert "Warning" not in clean.stderr


ODD_POD = """
apiVersion: v1
kind: Pod
metadata:
  name: odd
  annotations: {scheduler.alpha.kubernetes.io/critical-pod: ""}
spec:
  affinity:
    nodeAffinity:
      preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 1
        preference:
          matchExpressions: [{key: beta.kubernetes.io/os, operator: In, values: [linux]}]
  topologySpreadConstraints:
  - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: ScheduleAnyway}
  containers:
  - name: a
    image: busybox:1.36
    env: [{name: MODE, value: fast}, {name: MODE, value: slow}]
    ports: [{containerPort: 8080, hostIP: 127.0.0.1}]
  - name: b
    image: busybox:1.36
    ports: [{containerPort: 8080}]
"""


def test_more_of_upstreams_pod_warnings_reach_kubectl(kubectl: Kubectl) -> None:
    made = kubectl("create", "-f", "-", input=ODD_POD)
    assert "pod/odd created" in made.stdout
    for line in (
        "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].preference"
        '.matchExpressions[0].key: beta.kubernetes.io/os is deprecated since v1.14; use "kubernetes.io/os" instead',
        "spec.topologySpreadConstraints[0].labelSelector: a null labelSelector results in matching no pod",
        "metadata.annotations[scheduler.alpha.kubernetes.io/critical-pod]: non-functional in v1.16+; "
        'use the "priorityClassName" field instead',
        'spec.containers[0].env[1]: hides previous definition of "MODE", which may be dropped when using apply',
        "spec.containers[0].ports[0]: hostIP set without hostPort: "
        "{Name: HostPort:0 ContainerPort:8080 Protocol:TCP HostIP:127.0.0.1}",
        "spec.containers[1].ports[0]: overlapping port definition with spec.containers[0].ports[0]",
    ):
        assert f"Warning: {line}" in made.stderr, made.stderr

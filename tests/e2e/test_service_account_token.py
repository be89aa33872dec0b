"""ServiceAccounts end to end on real nodes: every namespace gets a ``default`` account and
the cluster CA; a pod's containers get a token bound to the pod, and a client inside the pod
(the machine's python3, reading the files and variables every in-cluster client reads)
reaches the API through the ``kubernetes`` Service, verifies it with the CA, and is who the
token says: refused until RBAC allows it, then answered. ``kubectl create token`` mints one
by hand; a token stops working when its account is deleted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.harness import NetCluster
from tests.harness.pods import pod, run_pods

NS = "sa-e2e"
CLIENT = r"""
import json, os, ssl, time, urllib.request, urllib.error
d = "/var/run/secrets/kubernetes.io/serviceaccount"
host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
ctx = ssl.create_default_context(cafile=d + "/ca.crt")
while True:
    ns = open(d + "/namespace").read()
    req = urllib.request.Request(f"https://{host}:{port}/api/v1/namespaces/{ns}/pods",
                                 headers={"Authorization": "Bearer " + open(d + "/token").read()})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=5) as r:
            print("status=%d items=%d" % (r.status, len(json.load(r)["items"])), flush=True)
    except urllib.error.HTTPError as e:
        print("status=%d %s" % (e.code, json.load(e).get("message")), flush=True)
    except Exception as e:
        print("error=%r" % (e,), flush=True)
    time.sleep(1)
"""


def wait_for(check, within: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within}s: {what}")
        time.sleep(0.3)


def logs(cluster: NetCluster, name: str) -> str:
    return cluster.kubectl("logs", "-n", NS, name).stdout


def test_pod_reaches_the_api_as_its_service_account(netcluster: NetCluster) -> None:
    cluster = netcluster
    assert cluster.kubectl("create", "namespace", NS).returncode == 0
    try:
        wait_for(lambda: cluster.kubectl("get", "sa", "default", "-n", NS).returncode == 0, 30, "default account")
        ca = wait_for(lambda: cluster.kubectl("get", "cm", "kube-root-ca.crt", "-n", NS, "-o",
                                              "jsonpath={.data.ca\\.crt}").stdout, 30, "kube-root-ca.crt")
        assert "BEGIN CERTIFICATE" in ca
        node = cluster.nodes[0].name
        run_pods(cluster, [pod("client", node, ["python3", "-c", CLIENT], namespace=NS)])
        spec = cluster.kubectl_json("get", "pod", "client", "-n", NS)["spec"]
        assert spec["serviceAccountName"] == "default"
        volume = next(v for v in spec["volumes"] if v["name"].startswith("kube-api-access-"))
        assert [next(iter(s)) for s in volume["projected"]["sources"]] == [
            "serviceAccountToken", "configMap", "downwardAPI"]
        assert {"name": volume["name"], "readOnly": True, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"
                } in spec["containers"][0]["volumeMounts"]

        # The API knows who is asking, and RBAC has not allowed it anything yet.
        wait_for(lambda: "status=403" in logs(cluster, "client"), 60, "a 403 from inside the pod")
        assert f'User "system:serviceaccount:{NS}:default" cannot list resource "pods"' in logs(cluster, "client")
        assert cluster.kubectl("create", "rolebinding", "read", "--clusterrole=view",
                               f"--serviceaccount={NS}:default", "-n", NS).returncode == 0
        wait_for(lambda: "status=200 items=1" in logs(cluster, "client"), 30, "the pod's client answered")

        # A token made by hand works from outside too, until its account is gone.
        token = cluster.kubectl("create", "token", "default", "-n", NS, "--duration=15m").stdout.strip()
        assert token.count(".") == 2

        def as_token(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(["kubectl", "--server", cluster.url, "--certificate-authority", cluster.ca_path,
                                   "--token", token, *args], capture_output=True, text=True, timeout=30)
        listed = as_token("get", "pods", "-n", NS, "-o", "json")
        assert listed.returncode == 0, listed.stderr
        assert [p["metadata"]["name"] for p in json.loads(listed.stdout)["items"]] == ["client"]
        denied = as_token("get", "secrets", "-n", NS)
        assert denied.returncode != 0 and "forbidden" in denied.stderr.lower()
        assert cluster.kubectl("delete", "sa", "default", "-n", NS).returncode == 0
        wait_for(lambda: "Unauthorized" in as_token("get", "pods", "-n", NS).stderr, 30, "401 after the account went")
    finally:
        cluster.kubectl("delete", "namespace", NS, "--wait=false")


def test_token_requests_are_checked(netcluster: NetCluster) -> None:
    cluster = netcluster
    short = cluster.kubectl("create", "token", "default", "-n", "default", "--duration=5m")
    assert short.returncode != 0
    assert "may not specify a duration less than 10 minutes" in short.stderr
    missing = cluster.kubectl("create", "token", "nobody", "-n", "default")
    assert missing.returncode != 0 and 'serviceaccounts "nobody" not found' in missing.stderr


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
OPERATOR_NS = "kopf-e2e"


def operator_pod(node: str) -> dict[str, Any]:
    """The example kopf operator in a `host`-image pod running as the `greeter` account: the
    interpreter and this virtualenv (kopf, the kubernetes client) are mounted read-only from the
    machine, nothing else is given to it: no kubeconfig, only what every pod gets."""
    venv = Path(sys.prefix)
    python_home = Path(os.path.realpath(sys.executable)).parents[1]
    mounts = {"python": python_home, "venv": venv, "operator": EXAMPLES}
    spec = pod("operator", node, [str(venv / "bin" / "python"), "-m", "kopf", "run", "--standalone",
                                  "--namespace", OPERATOR_NS, "/operator/greeting-operator.py"],
               namespace=OPERATOR_NS)
    spec["spec"]["serviceAccountName"] = "greeter"
    spec["spec"]["volumes"] = [{"name": n, "hostPath": {"path": str(p)}} for n, p in mounts.items()]
    spec["spec"]["containers"][0]["volumeMounts"] = [
        {"name": n, "mountPath": "/operator" if n == "operator" else str(p), "readOnly": True}
        for n, p in mounts.items()]
    return spec


@pytest.mark.timeout(300)  # the cluster's start counts when this test runs alone
def test_kopf_operator_in_a_pod_reconciles_with_its_own_token(netcluster: NetCluster) -> None:
    """examples/greeting-operator.py run by kopf inside a pod: it finds the API through the
    in-cluster configuration, is who its ServiceAccount token says (allowed by a Role), and
    reconciles a Greeting from creation to deletion."""
    cluster = netcluster
    crd = next(yaml.safe_load_all((EXAMPLES / "greeting-crd.yaml").read_text()))
    assert cluster.kubectl("apply", "-f", "-", input=json.dumps(crd)).returncode == 0
    try:
        assert cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd['metadata']['name']}",
                               "--timeout=30s").returncode == 0
        assert cluster.kubectl("create", "namespace", OPERATOR_NS).returncode == 0
        rbac = cluster.kubectl("apply", "-n", OPERATOR_NS, "-f", str(EXAMPLES / "greeting-operator-rbac.yaml"))
        assert rbac.returncode == 0, rbac.stderr
        for args in (("clusterrole", "greeter-namespaces", "--verb=list,watch", "--resource=namespaces"),
                     ("clusterrolebinding", "greeter-namespaces", "--clusterrole=greeter-namespaces",
                      f"--serviceaccount={OPERATOR_NS}:greeter")):
            made = cluster.kubectl("create", *args)
            assert made.returncode == 0, made.stderr
        run_pods(cluster, [operator_pod(cluster.nodes[0].name)])
        greeting = {"apiVersion": "ops.example.com/v1", "kind": "Greeting", "metadata": {"name": "hello"},
                    "spec": {"message": "hello from a pod", "count": 2}}
        made = cluster.kubectl("apply", "-n", OPERATOR_NS, "-f", "-", input=json.dumps(greeting))
        assert made.returncode == 0, made.stderr

        def phase() -> str:
            return cluster.kubectl("get", "greeting", "hello", "-n", OPERATOR_NS, "-o",
                                   "jsonpath={.status.phase}").stdout

        try:
            wait_for(lambda: phase() == "Greeted", 90, "the operator in the pod handled the Greeting")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; its log: {logs_of(cluster, 'operator')[-3000:]}") from exc
        cm = cluster.kubectl_json("get", "configmap", "hello-greeting", "-n", OPERATOR_NS)
        assert cm["data"] == {"message": "hello from a pod", "count": "2"}
        assert cluster.kubectl("delete", "greeting", "hello", "-n", OPERATOR_NS, "--timeout=60s").returncode == 0
        wait_for(lambda: "Handler 'delete' succeeded" in logs_of(cluster, "operator"), 30, "the delete handler ran")
        spec = cluster.kubectl_json("get", "pod", "operator", "-n", OPERATOR_NS)["spec"]
        assert spec["serviceAccountName"] == "greeter"
        assert any(v["name"].startswith("kube-api-access-") for v in spec["volumes"])
    finally:
        cluster.kubectl("delete", "namespace", OPERATOR_NS, "--wait=false")
        cluster.kubectl("delete", "crd", crd["metadata"]["name"], "--wait=false")
        cluster.kubectl("delete", "clusterrolebinding,clusterrole", "greeter-namespaces", "--ignore-not-found")


def logs_of(cluster: NetCluster, name: str) -> str:
    return cluster.kubectl("logs", "-n", OPERATOR_NS, name).stdout

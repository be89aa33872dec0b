"""StorageClass and volume-aware scheduling against a real control plane (API server,
scheduler, local-path provisioner) and hollow nodes: the default class as kubectl shows it,
class-less claims getting it, pods kept on the node that holds their volume (also after they
are deleted and come back), Kubernetes' FailedScheduling messages, and Immediate binding."""

from __future__ import annotations

import re
import subprocess
from collections.abc import AsyncIterator, Iterator
from typing import Any, TypeVar

import pytest
from tests.conftest import RunningServer, served
from tests.integration.helpers import eventually

from bosun.client.rest import Client
from bosun.component import ControlPlaneOptions
from bosun.controllers._common import resource
from bosun.hollow import HollowCluster

Obj = dict[str, Any]
T = TypeVar("T")
PODS = resource("", "v1", "pods")
PVCS = resource("", "v1", "persistentvolumeclaims")
PVS = resource("", "v1", "persistentvolumes")
EVENTS = resource("", "v1", "events")
NODES = resource("", "v1", "nodes")
NAMESPACES = resource("", "v1", "namespaces")
CLASSES = resource("storage.k8s.io", "v1", "storageclasses")
KUBECTL = "/usr/bin/kubectl"
SELECTED = "volume.kubernetes.io/selected-node"


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from served(tmp_path_factory.mktemp("volsched"),
                           options=ControlPlaneOptions(controllers=["localpath"], scheduler=True))


@pytest.fixture
async def client(plane: RunningServer, namespace: str) -> AsyncIterator[Client]:
    async with Client.from_kubeconfig(plane.kubeconfig) as c:
        await c.create(NAMESPACES, {"metadata": {"name": namespace}})
        yield c


def kubectl(plane: RunningServer, *args: str, stdin: str | None = None) -> str:
    out = subprocess.run([KUBECTL, "--kubeconfig", plane.kubeconfig, *args], input=stdin, capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout


def claim_body(name: str, cls: str | None = None) -> Obj:
    spec: Obj = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    if cls is not None:
        spec["storageClassName"] = cls
    return {"metadata": {"name": name}, "spec": spec}


def pod_body(name: str, claim: str) -> Obj:
    return {"metadata": {"name": name, "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}],
                     "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]}}


async def node_of(c: Client, ns: str, name: str) -> str:
    async def bound() -> str | None:
        return (await c.get(PODS, name, ns))["spec"].get("nodeName")
    return await eventually(bound, what=f"{name} scheduled", step=0.1)


async def failed_scheduling(c: Client, ns: str, pod: str) -> str:
    """The FailedScheduling message, with the node count (earlier tests' nodes stay registered) as N."""
    async def message() -> str | None:
        evs = [e for e in (await c.list(EVENTS, ns))["items"]
               if e["reason"] == "FailedScheduling" and e["involvedObject"]["name"] == pod]
        return evs[-1]["message"] if evs else None
    text = await eventually(message, what=f"FailedScheduling for {pod}", step=0.1)
    m = re.match(r"0/(\d+) nodes", text)
    assert m is not None, text
    return text.replace(m.group(1), "N")


async def delete_pod(c: Client, ns: str, name: str) -> None:
    await c.delete(PODS, name, ns, grace_period_seconds=0)

    async def gone() -> bool:
        return not any(p["metadata"]["name"] == name for p in (await c.list(PODS, ns))["items"])
    await eventually(gone, what=f"{name} deleted", step=0.1)


def test_kubectl_shows_the_default_class_and_class_less_claims_get_it(plane: RunningServer, namespace: str) -> None:
    table = kubectl(plane, "get", "sc")
    header, row = table.splitlines()[:2]
    assert header.split() == ["NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE", "ALLOWVOLUMEEXPANSION",
                              "AGE"]
    assert row.split()[:6] == ["local-path", "(default)", "bosun.io/local-path", "Delete", "WaitForFirstConsumer",
                               "false"]
    kubectl(plane, "create", "namespace", namespace)
    manifest = (f"apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: data, namespace: {namespace}}}\n"
                "spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n")
    kubectl(plane, "apply", "-f", "-", stdin=manifest)
    assert kubectl(plane, "get", "pvc", "data", "-n", namespace, "-o", "jsonpath={.spec.storageClassName}") == \
        "local-path"
    # An explicit "" means "no class" and is kept, as in Kubernetes.
    kubectl(plane, "apply", "-f", "-", stdin=manifest.replace("name: data", "name: none").replace(
        "spec: {", 'spec: {storageClassName: "", '))
    assert kubectl(plane, "get", "pvc", "none", "-n", namespace, "-o", "jsonpath={.spec.storageClassName}") == ""


async def test_pod_stays_on_the_node_holding_its_volume(client: Client, namespace: str) -> None:
    ns = namespace
    async with HollowCluster(client, 4, name_prefix=f"{ns}-n"):
        await client.create(PVCS, claim_body("data-web-0"), ns)
        await client.create(PODS, pod_body("web-0", "data-web-0"), ns)
        first = await node_of(client, ns, "web-0")

        async def bound() -> Obj | None:
            pvc = await client.get(PVCS, "data-web-0", ns)
            return pvc if pvc["status"].get("phase") == "Bound" else None
        pvc = await eventually(bound, what="claim bound", step=0.1)
        assert pvc["metadata"]["annotations"][SELECTED] == first
        pv = await client.get(PVS, pvc["spec"]["volumeName"])
        terms = pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
        assert terms[0]["matchExpressions"][0]["values"] == [first]
        for i in range(3):  # make the volume's node the least attractive to the spread strategy
            filler = pod_body(f"filler-{i}", "data-web-0")
            filler["spec"].update(nodeName=first, volumes=[])
            await client.create(PODS, filler, ns)
        for _ in range(3):
            await delete_pod(client, ns, "web-0")
            await client.create(PODS, pod_body("web-0", "data-web-0"), ns)
            assert await node_of(client, ns, "web-0") == first
        # A second consumer of the same claim goes there too.
        await client.create(PODS, pod_body("web-0-reader", "data-web-0"), ns)
        assert await node_of(client, ns, "web-0-reader") == first


async def test_failure_messages_and_retry_when_the_claim_appears(client: Client, namespace: str) -> None:
    ns = namespace
    async with HollowCluster(client, 3, name_prefix=f"{ns}-n"):
        await client.create(PODS, pod_body("orphan", "data-orphan"), ns)
        assert await failed_scheduling(client, ns, "orphan") == \
            '0/N nodes are available: persistentvolumeclaim "data-orphan" not found.'
        await client.create(PVCS, claim_body("data-orphan"), ns)
        await node_of(client, ns, "orphan")  # re-tried as soon as the claim exists

        # A class nobody provisions for, binding at once: the claim never binds.
        await client.create(CLASSES, {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                                      "metadata": {"name": f"{ns}-remote"}, "provisioner": "example.com/remote"})
        await client.create(PVCS, claim_body("waiting", f"{ns}-remote"), ns)
        await client.create(PODS, pod_body("early", "waiting"), ns)
        assert await failed_scheduling(client, ns, "early") == \
            "0/N nodes are available: pod has unbound immediate PersistentVolumeClaims."
        # Bound by hand to a volume reachable from anywhere: the waiting pod is re-tried and placed.
        await client.create(PVS, {"metadata": {"name": f"{ns}-manual"}, "spec": {
            "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": f"{ns}-remote",
            "hostPath": {"path": "/tmp/manual"}}})
        await client.patch(PVCS, "waiting", {"spec": {"volumeName": f"{ns}-manual"}}, ns)
        await node_of(client, ns, "early")

        # A volume pinned to a node that is not in the cluster.
        await client.create(PVS, {"metadata": {"name": f"{ns}-elsewhere"}, "spec": {
            "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
            "hostPath": {"path": "/tmp/elsewhere"},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": ["far-away"]}]}]}}}})
        pinned = claim_body("pinned", "")
        pinned["spec"]["volumeName"] = f"{ns}-elsewhere"
        await client.create(PVCS, pinned, ns)
        await client.create(PODS, pod_body("stuck", "pinned"), ns)
        assert await failed_scheduling(client, ns, "stuck") == \
            "0/N nodes are available: N node(s) had volume node affinity conflict."
        await client.delete(PVS, f"{ns}-elsewhere")
        await client.delete(PVS, f"{ns}-manual")
        await client.delete(CLASSES, f"{ns}-remote")


async def test_immediate_class_provisions_without_a_pod(client: Client, namespace: str) -> None:
    ns = namespace
    async with HollowCluster(client, 2, name_prefix=f"{ns}-n"):
        await client.create(CLASSES, {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                                      "metadata": {"name": f"{ns}-now"}, "provisioner": "bosun.io/local-path",
                                      "volumeBindingMode": "Immediate", "reclaimPolicy": "Retain"})
        await client.create(PVCS, claim_body("now", f"{ns}-now"), ns)

        async def bound() -> Obj | None:
            pvc = await client.get(PVCS, "now", ns)
            return pvc if pvc["status"].get("phase") == "Bound" else None
        pvc = await eventually(bound, what="immediate claim bound", step=0.1)
        pv = await client.get(PVS, pvc["spec"]["volumeName"])
        assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
        assert pv["spec"]["storageClassName"] == f"{ns}-now"
        node = pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"][0]
        # Any Ready node will do (earlier tests' hollow nodes are still registered and Ready).
        assert node in {n["metadata"]["name"] for n in (await client.list(NODES))["items"]}
        await client.create(PODS, pod_body("user", "now"), ns)
        assert await node_of(client, ns, "user") == node
        await client.delete(PVCS, "now", ns)
        await client.delete(CLASSES, f"{ns}-now")

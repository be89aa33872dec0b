"""Each admission plugin alone, and the chain's phases, over a real storage (SQLite)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests.unit.helpers import must_by_kind

from bosun.api import admission
from bosun.api.admission import AdmissionChain, DefaultStorageClass, NodeRestriction, Priority, Request, ServiceIPs
from bosun.api.admission.base import Operation
from bosun.api.allocators import IP_PREFIX, PORT_PREFIX, ServiceAllocator
from bosun.api.errors import APIError
from bosun.api.nstracker import NamespaceTracker
from bosun.api.registry import Resource
from bosun.api.storage import Storage
from bosun.security.identity import User
from bosun.store.sqlite import SQLiteStore

PODS = must_by_kind("v1", "Pod")
CLAIMS = must_by_kind("v1", "PersistentVolumeClaim")
SERVICES = must_by_kind("v1", "Service")
CLASSES = must_by_kind("scheduling.k8s.io/v1", "PriorityClass")
STORAGE_CLASSES = must_by_kind("storage.k8s.io/v1", "StorageClass")
NODES = must_by_kind("v1", "Node")
LEASES = must_by_kind("coordination.k8s.io/v1", "Lease")


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[Storage]:
    store = await SQLiteStore.open(tmp_path / "s.db", compact_interval=0)
    ns = NamespaceTracker()
    ns.phase["default"] = "Active"
    try:
        yield Storage(store, ns)
    finally:
        await store.close()


def pod(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec}}


def create(obj: dict[str, Any], res: Resource = PODS) -> Request:
    return Request(admission.CREATE, res, obj["metadata"].get("namespace"), obj["metadata"]["name"], obj)


async def priority_class(storage: Storage, name: str, value: int, **extra: Any) -> None:
    await storage.create(CLASSES, None, {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                                         "metadata": {"name": name}, "value": value, **extra})


# ---- Priority ------------------------------------------------------------------------------


async def test_priority_comes_from_the_named_class(storage: Storage) -> None:
    await priority_class(storage, "high", 1000, preemptionPolicy="Never")
    req = create(pod(priorityClassName="high"))
    await Priority(storage).admit(req)
    assert (req.obj["spec"]["priority"], req.obj["spec"]["preemptionPolicy"]) == (1000, "Never")


async def test_built_in_classes_need_no_object(storage: Storage) -> None:
    req = create(pod(priorityClassName="system-node-critical"))
    await Priority(storage).admit(req)
    assert req.obj["spec"]["priority"] == 2000001000


async def test_a_missing_class_is_forbidden(storage: Storage) -> None:
    with pytest.raises(APIError) as err:
        await Priority(storage).admit(create(pod(priorityClassName="nope")))
    assert (err.value.code, err.value.message) == (
        403, 'pods "p" is forbidden: no PriorityClass with name nope was found')


async def test_the_global_default_class_applies_to_pods_naming_none(storage: Storage) -> None:
    await priority_class(storage, "low", 5)
    await priority_class(storage, "normal", 100, globalDefault=True)
    req = create(pod())
    await Priority(storage).admit(req)
    assert (req.obj["spec"]["priorityClassName"], req.obj["spec"]["priority"]) == ("normal", 100)
    explicit = create(pod(priority=7))  # a pod that sets a priority itself keeps it
    await Priority(storage).admit(explicit)
    assert explicit.obj["spec"]["priority"] == 7 and "priorityClassName" not in explicit.obj["spec"]


def test_priority_handles_pod_creates_only() -> None:
    p = Priority.__new__(Priority)
    assert p.handles(PODS, "CREATE", None)
    assert not p.handles(PODS, "UPDATE", None)
    assert not p.handles(PODS, "CREATE", "binding")
    assert not p.handles(SERVICES, "CREATE", None)


# ---- DefaultStorageClass -------------------------------------------------------------------


def claim(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "c", "namespace": "default"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}, **spec}}


async def test_a_claim_naming_no_class_gets_the_default(storage: Storage) -> None:
    plugin = DefaultStorageClass(storage)
    req = create(claim(), CLAIMS)
    await plugin.admit(req)
    assert "storageClassName" not in req.obj["spec"]  # no default class yet: left alone
    for name, default in (("slow", False), ("fast", True)):
        ann = {"storageclass.kubernetes.io/is-default-class": "true"} if default else {}
        await storage.create(STORAGE_CLASSES, None, {
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "provisioner": "p",
            "metadata": {"name": name, "annotations": ann}})
    await plugin.admit(req)
    assert req.obj["spec"]["storageClassName"] == "fast"
    empty = create(claim(storageClassName=""), CLAIMS)  # "" asks for no class at all
    await plugin.admit(empty)
    assert empty.obj["spec"]["storageClassName"] == ""


# ---- ServiceIPs ----------------------------------------------------------------------------


def service(type_: str = "NodePort", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "default"},
            "spec": {"type": type_, "ports": [{"port": 80, "protocol": "TCP"}], **spec}}


async def keys(storage: Storage) -> list[str]:
    ips, _ = await storage.store.list(IP_PREFIX)
    ports, _ = await storage.store.list(PORT_PREFIX)
    return [kv.key for kv in ips + ports]


async def test_service_ips_reserved_then_given_back_when_the_write_fails(storage: Storage) -> None:
    plugin = ServiceIPs(ServiceAllocator(storage.store))
    req = create(service(), SERVICES)
    await plugin.admit(req)
    spec = req.obj["spec"]
    assert spec["clusterIP"].startswith("10.96.") and 30000 <= spec["ports"][0]["nodePort"] <= 32767
    assert sorted(await keys(storage)) == sorted([IP_PREFIX + spec["clusterIP"],
                                                  f"{PORT_PREFIX}{spec['ports'][0]['nodePort']}"])
    await req.failed()
    assert await keys(storage) == []


async def test_service_ips_a_taken_address_is_a_422_naming_the_field(storage: Storage) -> None:
    plugin = ServiceIPs(ServiceAllocator(storage.store))
    await plugin.admit(create(service("ClusterIP", clusterIP="10.96.0.50"), SERVICES))
    with pytest.raises(APIError) as err:
        await plugin.admit(create(service("ClusterIP", clusterIP="10.96.0.50"), SERVICES))
    assert err.value.code == 422
    assert 'Service "s" is invalid: spec.clusterIPs: Invalid value: ' in err.value.message
    assert "failed to allocate IP 10.96.0.50: provided IP is already allocated" in err.value.message


async def test_service_ips_dry_run_reserves_nothing(storage: Storage) -> None:
    req = create(service(), SERVICES)
    req.dry_run = True
    await ServiceIPs(ServiceAllocator(storage.store)).admit(req)
    assert await keys(storage) == [] and "clusterIP" not in req.obj["spec"]


async def test_service_ips_update_and_delete_release_after_the_write(storage: Storage) -> None:
    plugin = ServiceIPs(ServiceAllocator(storage.store))
    first = create(service(), SERVICES)
    await plugin.admit(first)
    old = first.obj
    new = service("ClusterIP")
    update = Request(admission.UPDATE, SERVICES, "default", "s", new, old)
    await plugin.admit(update)
    assert new["spec"]["clusterIP"] == old["spec"]["clusterIP"] and "nodePort" not in new["spec"]["ports"][0]
    assert len(await keys(storage)) == 2  # the node port is freed only once the update is stored
    await update.succeeded()
    assert await keys(storage) == [IP_PREFIX + old["spec"]["clusterIP"]]
    delete = Request(admission.DELETE, SERVICES, "default", "s", new)
    await plugin.admit(delete)
    assert len(await keys(storage)) == 1
    await delete.succeeded()
    assert await keys(storage) == []


# ---- NodeRestriction -----------------------------------------------------------------------


def node_object(kind: str, name: str) -> dict[str, Any]:
    api = "v1" if kind == "Node" else "coordination.k8s.io/v1"
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name}}


async def test_a_node_creates_only_its_own_node_and_lease() -> None:
    plugin = NodeRestriction()
    node_user = User("system:node:n1", ("system:nodes", "system:authenticated"))
    for res, kind, ns in ((NODES, "Node", None), (LEASES, "Lease", "kube-node-lease")):
        own = Request(admission.CREATE, res, ns, "n1", node_object(kind, "n1"), user=node_user)
        await plugin.admit(own)
        other = Request(admission.CREATE, res, ns, "n2", node_object(kind, "n2"), user=node_user)
        with pytest.raises(APIError) as err:
            await plugin.admit(other)
        assert err.value.code == 403
        assert f'node "n1" is not allowed to modify {kind.lower()} "n2"' in err.value.message
    admin = Request(admission.CREATE, NODES, None, "n2", node_object("Node", "n2"), user=User("admin", ()))
    await plugin.admit(admin)  # only nodes are restricted
    assert plugin.handles(NODES, "CREATE", None) and not plugin.handles(NODES, "UPDATE", None)
    assert not plugin.handles(PODS, "CREATE", None)


# ---- the chain -----------------------------------------------------------------------------


class Recorder:
    """A plugin that records its calls (and refuses when told to)."""

    def __init__(self, name: str, mutating: bool, log: list[str], refuse: bool = False) -> None:
        self.name, self.mutating, self.log, self.refuse = name, mutating, log, refuse

    def handles(self, res: Resource, operation: Operation, subresource: str | None) -> bool:
        return res == PODS and operation == "CREATE"

    async def admit(self, req: Request) -> None:
        self.log.append(self.name)

        async def undo() -> None:
            self.log.append(f"undo {self.name}")

        req.on_failure(undo)
        if self.refuse:
            raise APIError(403, "Forbidden", f"{self.name} says no")


async def test_chain_runs_each_phase_in_order_and_undoes_on_refusal() -> None:
    log: list[str] = []
    chain = AdmissionChain([Recorder("m1", True, log), Recorder("v1", False, log), Recorder("m2", True, log),
                            Recorder("v2", False, log, refuse=True), Recorder("v3", False, log)])
    req = create(pod())
    await chain.mutate(req)
    assert log == ["m1", "m2"]
    with pytest.raises(APIError, match="v2 says no"):
        await chain.validate(req)
    assert log == ["m1", "m2", "v1", "v2", "undo v2", "undo v1", "undo m2", "undo m1"]
    log.clear()
    await chain.mutate(create(pod(), SERVICES))  # no plugin handles services: nothing runs
    assert log == []


def test_standard_chain_order(storage: Storage) -> None:
    assert [p.name for p in storage.admission.plugins] == [
        "NodeRestriction", "ServiceAccount", "Priority", "DefaultTolerationSeconds", "DefaultStorageClass",
        "LimitRanger", "LimitRanger", "ServiceAccount", "RuntimeClass", "PublishedPorts", "ServiceIPAllocation",
        "AlertRules", "CertificateApproval", "CertificateSigning", "CertificateSubjectRestriction",
        "ValidatingAdmissionPolicy", "ResourceQuota"]


def published_service(name: str, port: int, namespace: str = "default") -> dict[str, Any]:
    """What ``bosun service create -p PORT:80`` writes (bosun.api.published)."""
    svc = service(ports=[{"port": 80, "protocol": "TCP", "nodePort": port}])
    svc["metadata"] = {"name": name, "namespace": namespace,
                       "annotations": {"bosun.io/published-ports": f"{port}:80/tcp"}}
    return svc


async def test_a_published_port_keeps_its_number_and_belongs_to_one_service(storage: Storage) -> None:
    created = await storage.create(SERVICES, "default", published_service("web", 8080))
    assert created["spec"]["ports"][0]["nodePort"] == 8080
    with pytest.raises(APIError) as err:
        await storage.create(SERVICES, "default", published_service("api", 8080))
    assert err.value.code == 422
    assert ('Service "api" is invalid: spec.ports[0].nodePort: Invalid value: 8080: provided port is already '
            "allocated (in use by service default/web)") in err.value.message
    await storage.delete(SERVICES, "default", "web", options={})
    await storage.create(SERVICES, "default", published_service("api", 8080))  # free again


async def test_a_published_port_may_not_take_the_node_agents_port(storage: Storage) -> None:
    await storage.create(NODES, None, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
                                       "status": {"daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}})
    with pytest.raises(APIError) as err:
        await storage.create(SERVICES, "default", published_service("web", 10250))
    assert err.value.code == 422
    assert "spec.ports[0].nodePort: Invalid value: 10250: port 10250 is the node agent's own port" in err.value.message
    assert await keys(storage) == []


async def test_a_service_deleted_through_its_last_finalizer_gives_its_addresses_back(storage: Storage) -> None:
    svc = service(ports=[{"port": 80, "protocol": "TCP", "nodePort": 30111}])
    svc["metadata"]["finalizers"] = ["example.com/hold"]
    created = await storage.create(SERVICES, "default", svc)
    assert len(await keys(storage)) == 2
    marked, gone = await storage.delete(SERVICES, "default", "s", options={})
    assert not gone and marked["metadata"]["deletionTimestamp"]
    assert len(await keys(storage)) == 2  # still held while the finalizer works

    def release(obj: dict[str, Any]) -> dict[str, Any]:
        obj["metadata"]["finalizers"] = []
        return obj

    await storage.mutate(SERVICES, "default", "s", release)
    assert await keys(storage) == []
    again = service(ports=[{"port": 80, "protocol": "TCP", "nodePort": 30111}],
                    clusterIP=created["spec"]["clusterIP"])
    await storage.create(SERVICES, "default", again)  # the same address and port are free again

"""The RuntimeClass admission plugin alone, over a real storage (SQLite): a pod naming a class
gets its overhead and scheduling constraints, and is refused as upstream refuses it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests.unit.helpers import must_by_kind

from bosun.api import admission
from bosun.api.admission import Request, RuntimeClass
from bosun.api.errors import APIError
from bosun.api.nstracker import NamespaceTracker
from bosun.api.storage import Storage
from bosun.store.sqlite import SQLiteStore

PODS = must_by_kind("v1", "Pod")
RUNTIME_CLASSES = must_by_kind("node.k8s.io/v1", "RuntimeClass")
GVISOR_TOLERATION = {"key": "sandbox", "operator": "Equal", "value": "gvisor", "effect": "NoSchedule"}


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[Storage]:
    store = await SQLiteStore.open(tmp_path / "s.db", compact_interval=0)
    ns = NamespaceTracker()
    ns.phase["default"] = "Active"
    try:
        await Storage(store, ns).create(RUNTIME_CLASSES, None, {
            "apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": "gvisor"},
            "handler": "runsc", "overhead": {"podFixed": {"cpu": "250m", "memory": "120Mi"}},
            "scheduling": {"nodeSelector": {"sandbox": "gvisor"}, "tolerations": [GVISOR_TOLERATION]}})
        yield Storage(store, ns)
    finally:
        await store.close()


def create(**spec: Any) -> Request:
    obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
           "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec}}
    return Request(admission.CREATE, PODS, "default", "p", obj)


async def refusal(storage: Storage, req: Request) -> tuple[int, str]:
    with pytest.raises(APIError) as err:
        await RuntimeClass(storage).admit(req)
    return err.value.code, err.value.message


async def test_a_pod_gets_the_class_overhead_and_scheduling(storage: Storage) -> None:
    req = create(runtimeClassName="gvisor", nodeSelector={"disk": "ssd"}, tolerations=[GVISOR_TOLERATION])
    await RuntimeClass(storage).admit(req)
    spec = req.obj["spec"]
    assert spec["overhead"] == {"cpu": "250m", "memory": "120Mi"}
    assert spec["nodeSelector"] == {"disk": "ssd", "sandbox": "gvisor"}
    assert spec["tolerations"] == [GVISOR_TOLERATION]  # not added twice
    plain = create()
    await RuntimeClass(storage).admit(plain)
    assert "overhead" not in plain.obj["spec"]


async def test_a_missing_class_or_a_conflict_is_forbidden(storage: Storage) -> None:
    assert await refusal(storage, create(runtimeClassName="kata")) == (
        403, 'pods "p" is forbidden: pod rejected: RuntimeClass "kata" not found')
    assert await refusal(storage, create(runtimeClassName="gvisor", nodeSelector={"sandbox": "none"})) == (
        403, 'pods "p" is forbidden: pod rejected: conflict: runtimeClass.scheduling.nodeSelector[sandbox] = '
             "gvisor; pod.spec.nodeSelector[sandbox] = none")
    assert await refusal(storage, create(runtimeClassName="gvisor", overhead={"cpu": "1"})) == (
        403, "pods \"p\" is forbidden: pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead")

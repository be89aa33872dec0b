"""The admission chain through the real server: what a plugin reserves is given back when the
write does not happen, and what the old object held is released once an update is stored."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tests.conftest import RunningServer
from tests.integration.helpers import client_in

from bosun.api.registry import must_by_plural
from bosun.client.errors import ApiError
from bosun.client.rest import Client

NS = must_by_plural("", "v1", "namespaces")
SVCS = must_by_plural("", "v1", "services")
PODS = must_by_plural("", "v1", "pods")


@pytest.fixture
async def client(api_server: RunningServer, namespace: str) -> AsyncIterator[Client]:
    async with client_in(api_server, namespace, delete=True) as c:
        yield c


def service(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80}], **spec}}


def free_ip() -> str:
    # Far from the addresses other tests draw, and different on each run.
    return f"10.96.{random.randint(200, 254)}.{random.randint(2, 254)}"


async def test_a_failed_create_gives_its_cluster_ip_back(client: Client, namespace: str) -> None:
    await client.create(SVCS, service("a"), namespace)
    ip = free_ip()
    with pytest.raises(ApiError) as e:  # the name is taken: the IP reserved for it is released
        await client.create(SVCS, service("a", clusterIP=ip), namespace)
    assert e.value.status == 409
    assert (await client.create(SVCS, service("b", clusterIP=ip), namespace))["spec"]["clusterIP"] == ip


async def test_a_dry_run_reserves_nothing(client: Client, namespace: str) -> None:
    ip = free_ip()
    out = await client.create(SVCS, service("d", clusterIP=ip), namespace, dry_run=True)
    assert out["spec"]["clusterIP"] == ip
    assert (await client.create(SVCS, service("e", clusterIP=ip), namespace))["spec"]["clusterIP"] == ip


async def test_changing_type_releases_the_node_port_after_the_update(client: Client, namespace: str) -> None:
    np = await client.create(SVCS, service("np", type="NodePort"), namespace)
    port, ip = np["spec"]["ports"][0]["nodePort"], np["spec"]["clusterIP"]
    np["spec"].update(type="ClusterIP", ports=[{"port": 80}])
    np["spec"].pop("externalTrafficPolicy", None)
    plain = await client.update(SVCS, np)
    assert "nodePort" not in plain["spec"]["ports"][0]
    assert plain["spec"]["clusterIP"] == ip  # the address is kept
    reuse = service("np2", type="NodePort")
    reuse["spec"]["ports"][0]["nodePort"] = port
    assert (await client.create(SVCS, reuse, namespace))["spec"]["ports"][0]["nodePort"] == port


async def test_a_missing_priority_class_is_refused_before_anything_is_stored(client: Client, namespace: str) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"priorityClassName": "no-such-class", "containers": [{"name": "c", "image": "busybox"}]}}
    with pytest.raises(ApiError) as e:
        await client.create(PODS, pod, namespace)
    assert e.value.status == 403
    assert e.value.message == 'pods "p" is forbidden: no PriorityClass with name no-such-class was found'
    assert (await client.list(PODS, namespace))["items"] == []

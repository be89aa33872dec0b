"""autoscaling/v1 and autoscaling/v2 HorizontalPodAutoscalers are one object seen two ways,
through a real API server: what v1 writes v2 reads (and back), a v1 patch keeps v2's other
metrics, a v1 watch streams v1 objects, bad bounds are a 422 naming the field."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bosun.client.errors import ApiError
from bosun.client.rest import Client
from bosun.controllers._common import resource

V1 = resource("autoscaling", "v1", "horizontalpodautoscalers")
V2 = resource("autoscaling", "v2", "horizontalpodautoscalers")
NAMESPACES = resource("", "v1", "namespaces")


def v1_hpa(name: str, lo: int = 1, hi: int = 5, cpu: int = 50) -> dict[str, Any]:
    return {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": name},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                     "minReplicas": lo, "maxReplicas": hi, "targetCPUUtilizationPercentage": cpu}}


async def test_v1_and_v2_are_one_object(client: Client, namespace: str) -> None:
    await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    made = await client.create(V1, v1_hpa("web"), namespace)
    assert made["apiVersion"] == "autoscaling/v1" and made["spec"]["targetCPUUtilizationPercentage"] == 50
    v2 = await client.get(V2, "web", namespace)
    assert v2["spec"]["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]
    assert "annotations" not in v2["metadata"]

    # A v2-only metric survives a v1 read-modify-write.
    pods_metric = {"type": "Pods", "pods": {"metric": {"name": "q"}, "target": {"type": "AverageValue",
                                                                              "averageValue": "10"}}}
    await client.patch(V2, "web", {"spec": {"metrics": [*v2["spec"]["metrics"], pods_metric]}}, namespace)
    v1 = await client.get(V1, "web", namespace)
    v1["spec"]["maxReplicas"] = 7
    await client.update(V1, v1)
    v2 = await client.get(V2, "web", namespace)
    assert v2["spec"]["maxReplicas"] == 7 and pods_metric in v2["spec"]["metrics"]
    patched = await client.patch(V1, "web", {"spec": {"targetCPUUtilizationPercentage": 70}}, namespace)
    assert patched["spec"]["targetCPUUtilizationPercentage"] == 70
    assert (await client.get(V2, "web", namespace))["spec"]["metrics"][0]["resource"]["target"][
        "averageUtilization"] == 70

    listed = await client.list(V1, namespace)
    assert [o["apiVersion"] for o in listed["items"]] == ["autoscaling/v1"]
    events = [e async for e in client.watch(V1, namespace, timeout_seconds=1, allow_bookmarks=False)]
    assert events and all(e["object"]["apiVersion"] == "autoscaling/v1" for e in events)
    assert events[0]["object"]["spec"]["targetCPUUtilizationPercentage"] == 70

    with pytest.raises(ApiError) as err:
        await client.create(V1, v1_hpa("upside", lo=5, hi=2), namespace)
    assert err.value.status == 422 and "spec.maxReplicas" in str(err.value)
    await client.delete(V1, "web", namespace)
    with pytest.raises(ApiError) as err:
        await client.get(V2, "web", namespace)
    assert err.value.status == 404


async def test_watchers_of_each_version_get_it_at_their_version(client: Client, namespace: str) -> None:
    """A change watched at v1 and at v2, by two watchers each: the event's object is encoded
    once per version and shared, so a v1 watcher must still never get v2's (or back)."""
    await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    rv = (await client.create(V1, v1_hpa("shared"), namespace))["metadata"]["resourceVersion"]
    await client.patch(V1, "shared", {"spec": {"targetCPUUtilizationPercentage": 60}}, namespace)
    await client.patch(V1, "shared", {"metadata": {"labels": {"seen": "yes"}}}, namespace)

    async def events(res: Any) -> list[dict[str, Any]]:
        return [e async for e in client.watch(res, namespace, resource_version=rv, timeout_seconds=1,
                                              allow_bookmarks=False)]

    got = await asyncio.gather(events(V1), events(V2), events(V1), events(V2))
    for evs, version in zip(got, ("v1", "v2", "v1", "v2"), strict=True):
        assert [e["type"] for e in evs] == ["MODIFIED", "MODIFIED"]
        assert {e["object"]["apiVersion"] for e in evs} == {f"autoscaling/{version}"}
        first, second = (int(e["object"]["metadata"]["resourceVersion"]) for e in evs)
        assert int(rv) < first < second
    assert [e["object"]["spec"]["targetCPUUtilizationPercentage"] for e in got[0]] == [60, 60]
    assert [e["object"]["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] for e in got[1]] == [60, 60]
    assert got[0] == got[2] and got[1] == got[3]
    assert got[0][1]["object"]["metadata"]["labels"] == {"seen": "yes"}

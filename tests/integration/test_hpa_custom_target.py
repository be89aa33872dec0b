"""An HPA whose target is a custom resource: the controller finds the kind's scale subresource
through discovery (a CustomResourceDefinition with ``subresources.scale``) and writes the
replicas through it; a custom kind without one gets the AbleToScale=False condition and a
FailedGetScale event, and no crash loop."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from tests.conftest import RunningServer, served
from tests.integration.helpers import create_namespace, eventually

from bosun.api.registry import Resource
from bosun.client.errors import ApiError
from bosun.client.rest import Client
from bosun.component import ControlPlaneOptions
from bosun.controllers._common import resource

pytestmark = pytest.mark.timeout(120)

CRDS = resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
HPAS = resource("autoscaling", "v2", "horizontalpodautoscalers")
NAMESPACES, EVENTS = resource("", "v1", "namespaces"), resource("", "v1", "events")
Obj = dict[str, Any]


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    options = ControlPlaneOptions(controllers=["hpa"], scheduler=False, hpa_sync_period=1.0)
    yield from served(tmp_path_factory.mktemp("hpa-crd"), options=options)


@pytest.fixture
async def client(plane: RunningServer) -> AsyncIterator[Client]:
    async with Client.from_kubeconfig(plane.kubeconfig) as c:
        yield c


def crd(group: str, plural: str, kind: str, scale: bool) -> Obj:
    props = {"replicas": {"type": "integer"}, "selector": {"type": "string"}}
    subresources: Obj = {"status": {}}
    if scale:
        subresources["scale"] = {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas",
                                 "labelSelectorPath": ".status.selector"}
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}"},
            "spec": {"group": group, "scope": "Namespaced", "names": {"plural": plural, "kind": kind},
                     "versions": [{"name": "v1", "served": True, "storage": True, "subresources": subresources,
                                   "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                                       "spec": {"type": "object", "properties": props},
                                       "status": {"type": "object", "properties": props}}}}}]}}


def hpa(name: str, api_version: str, kind: str, target: str) -> Obj:
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": name},
            "spec": {"scaleTargetRef": {"apiVersion": api_version, "kind": kind, "name": target},
                     "minReplicas": 3, "maxReplicas": 5,
                     "metrics": [{"type": "Resource", "resource": {
                         "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]}}


async def test_hpa_scales_a_custom_resource_through_its_scale_subresource(client: Client) -> None:
    group = f"w{uuid.uuid4().hex[:8]}.example.com"
    ns = f"hpa-crd-{uuid.uuid4().hex[:6]}"
    await create_namespace(client, ns)
    try:
        await client.create(CRDS, crd(group, "widgets", "Widget", scale=True))
        await client.create(CRDS, crd(group, "gadgets", "Gadget", scale=False))
        widgets = Resource(group, "v1", "Widget", "widgets", True, subresources=("scale", "status"))
        gadgets = Resource(group, "v1", "Gadget", "gadgets", True, subresources=("status",))

        async def served() -> bool:
            try:
                await client.list(widgets, ns)
                await client.list(gadgets, ns)
            except ApiError:
                return False
            return True

        await eventually(served, 30, "the CRDs served")
        for res, kind in ((widgets, "Widget"), (gadgets, "Gadget")):
            await client.create(res, {"apiVersion": f"{group}/v1", "kind": kind, "metadata": {"name": "w"},
                                      "spec": {"replicas": 1}}, ns)
            await client.create(HPAS, hpa(kind.lower(), f"{group}/v1", kind, "w"), ns)

        async def scaled() -> bool:
            return (await client.get(widgets, "w", ns))["spec"]["replicas"] == 3

        await eventually(scaled, 30, "the Widget scaled to minReplicas through its scale subresource")
        rescaled = [e for e in (await client.list(EVENTS, ns))["items"] if e["reason"] == "SuccessfulRescale"]
        assert rescaled and "New size: 3; reason: Current number of replicas below Spec.MinReplicas" in \
            rescaled[0]["message"]

        async def refused() -> Obj | None:
            st = (await client.get(HPAS, "gadget", ns)).get("status") or {}
            able = [c for c in st.get("conditions") or [] if c["type"] == "AbleToScale"]
            return able[0] if able and able[0]["status"] == "False" else None

        cond = await eventually(refused, 30, "the Gadget HPA's AbleToScale=False")
        assert cond["reason"] == "FailedGetScale" and f"{group}/v1/Gadget has no scale subresource" in cond["message"]
        assert (await client.get(gadgets, "w", ns))["spec"]["replicas"] == 1
    finally:
        await client.delete(NAMESPACES, ns)
        for plural in ("widgets", "gadgets"):
            with contextlib.suppress(ApiError):
                await client.delete(CRDS, f"{plural}.{group}")

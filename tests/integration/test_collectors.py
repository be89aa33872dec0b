"""The garbage collector and the namespace controller across built-in and custom kinds: owner
references from and to custom objects cascade in every mode, and a Terminating namespace
says what holds it (upstream's deletion conditions) until its last object is gone."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from tests.conftest import RunningServer

from bosun.api.registry import Resource, must_by_plural
from bosun.client.errors import ApiError
from bosun.client.rest import Client

NS = must_by_plural("", "v1", "namespaces")
CMS = must_by_plural("", "v1", "configmaps")
CRDS = must_by_plural("apiextensions.k8s.io", "v1", "customresourcedefinitions")
GROUP = f"gc{uuid.uuid4().hex[:6]}.example.com"
WIDGETS = Resource(GROUP, "v1", "Widget", "widgets", True)


async def until(what: str, cond: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:  # noqa: ASYNC109
    deadline = asyncio.get_running_loop().time() + timeout
    while not await cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.05)


async def exists(c: Client, res: Resource, name: str, ns: str | None = None) -> bool:
    try:
        await c.get(res, name, ns)
    except ApiError as exc:
        assert exc.status == 404
        return False
    return True


@pytest.fixture
async def c(api_server: RunningServer, namespace: str) -> AsyncIterator[Client]:
    """A client, a namespace, and a served Widget kind (removed afterwards)."""
    client = Client.from_kubeconfig(api_server.kubeconfig)
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": f"widgets.{GROUP}"},
           "spec": {"group": GROUP, "scope": "Namespaced", "names": {"plural": "widgets", "kind": "Widget"},
                    "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                        "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}
    await client.create(NS, {"metadata": {"name": namespace}})
    await client.create(CRDS, crd)

    async def served() -> bool:
        try:
            await client.list(WIDGETS, namespace)
        except ApiError:
            return False
        return True

    try:
        await until("the Widget kind is served", served)
        yield client
    finally:
        for res, name, ns in ((NS, namespace, None), (CRDS, f"widgets.{GROUP}", None)):
            try:
                await client.delete(res, name, ns)
            except ApiError:
                pass
        try:  # the CRD goes once its finalizer has emptied it: the next test makes it again
            await until("the Widget kind is gone", lambda: _gone(client, CRDS, f"widgets.{GROUP}", None), 60)
        finally:
            await client.close()


def widget(name: str, **meta: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": name, **meta}, "spec": {}}


def cm_owned_by(name: str, owner: dict[str, Any], block: bool = True, **meta: Any) -> dict[str, Any]:
    ref = {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
           "uid": owner["metadata"]["uid"], "blockOwnerDeletion": block}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "ownerReferences": [ref], **meta}}


async def test_custom_owners_cascade_in_every_mode(c: Client, namespace: str) -> None:
    # Background: the Widget goes, then the ConfigMap it owns.
    owner = await c.create(WIDGETS, widget("bg"), namespace)
    await c.create(CMS, cm_owned_by("bg-dep", owner), namespace)
    await c.delete(WIDGETS, "bg", namespace, propagation_policy="Background")
    await until("the Widget's dependent is collected", lambda: _gone(c, CMS, "bg-dep", namespace))

    # Foreground: the owner waits for a dependent that blocks it (held by a finalizer).
    owner = await c.create(WIDGETS, widget("fg"), namespace)
    await c.create(CMS, cm_owned_by("fg-dep", owner, finalizers=["example.com/hold"]), namespace)
    await c.delete(WIDGETS, "fg", namespace, propagation_policy="Foreground")

    async def dependent_deleting() -> bool:
        dep = await c.get(CMS, "fg-dep", namespace)
        return bool(dep["metadata"].get("deletionTimestamp"))

    await until("the dependent is being deleted first", dependent_deleting)
    held = await c.get(WIDGETS, "fg", namespace)
    assert held["metadata"]["finalizers"] == ["foregroundDeletion"]
    await c.patch(CMS, "fg-dep", {"metadata": {"finalizers": None}}, namespace)
    await until("the foreground owner goes after its dependent", lambda: _gone(c, WIDGETS, "fg", namespace))

    # A dependent that does not block its owner (blockOwnerDeletion false) does not hold it.
    owner = await c.create(WIDGETS, widget("nb"), namespace)
    await c.create(CMS, cm_owned_by("nb-dep", owner, block=False, finalizers=["example.com/hold"]), namespace)
    await c.delete(WIDGETS, "nb", namespace, propagation_policy="Foreground")
    await until("the owner goes without waiting for a non-blocking dependent",
                lambda: _gone(c, WIDGETS, "nb", namespace))
    assert (await c.get(CMS, "nb-dep", namespace))["metadata"]["deletionTimestamp"]
    await c.patch(CMS, "nb-dep", {"metadata": {"finalizers": None}}, namespace)

    # Orphan: a custom dependent of a ConfigMap stays, without its reference.
    cm_owner = await c.create(CMS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "or"}}, namespace)
    dep = widget("or-dep")
    dep["metadata"]["ownerReferences"] = cm_owned_by("x", cm_owner)["metadata"]["ownerReferences"]
    await c.create(WIDGETS, dep, namespace)
    await c.delete(CMS, "or", namespace, propagation_policy="Orphan")
    await until("the orphaning owner goes", lambda: _gone(c, CMS, "or", namespace))
    kept = await c.get(WIDGETS, "or-dep", namespace)
    assert not kept["metadata"].get("ownerReferences")


async def _gone(c: Client, res: Resource, name: str, ns: str | None) -> bool:
    return not await exists(c, res, name, ns)


async def test_namespace_deletion_empties_custom_kinds_and_says_what_remains(c: Client, namespace: str) -> None:
    await c.create(WIDGETS, widget("w"), namespace)
    held = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "held", "finalizers": ["example.com/hold"]}}
    await c.create(CMS, held, namespace)
    await c.delete(NS, namespace)
    await until("the Widget is deleted", lambda: _gone(c, WIDGETS, "w", namespace))

    def conditions(ns: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
        return {x["type"]: (x["status"], x["reason"], x["message"]) for x in ns["status"].get("conditions") or []}

    async def reported() -> bool:
        return "NamespaceFinalizersRemaining" in conditions(await c.get(NS, namespace))

    await until("the namespace reports what holds it", reported)
    got = conditions(await c.get(NS, namespace))
    assert got["NamespaceContentRemaining"] == (
        "True", "SomeResourcesRemain", "Some resources are remaining: configmaps. has 1 resource instances")
    assert got["NamespaceFinalizersRemaining"] == (
        "True", "SomeFinalizersRemain",
        "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances")
    assert got["NamespaceDeletionContentFailure"] == (
        "False", "ContentDeleted", "All content successfully deleted, may be waiting on finalization")
    assert got["NamespaceDeletionDiscoveryFailure"][0] == "False"
    await c.patch(CMS, "held", {"metadata": {"finalizers": None}}, namespace)
    await until("the namespace goes once its last object is gone", lambda: _gone(c, NS, namespace, None))

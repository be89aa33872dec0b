"""Custom resources through the ecosystem's clients: the official client's CRD API and
dynamic client, ``kubernetes_asyncio``, and a real ``kopf`` operator run unchanged."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config, dynamic
from kubernetes_asyncio import client as aclient
from kubernetes_asyncio import config as aconfig
from tests.conftest import RunningServer, served
from tests.e2e.helpers import wait_until

GROUP = "ops.example.com"


def definition(plural: str, kind: str) -> dict[str, Any]:
    """A namespaced CRD with a status subresource whose status keeps what an operator writes."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP, "scope": "Namespaced",
            "names": {"plural": plural, "kind": kind, "shortNames": [plural[:3]]},
            "versions": [{
                "name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {
                        "message": {"type": "string"}, "count": {"type": "integer", "default": 1}}},
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                }}},
            }],
        },
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from served(tmp_path_factory.mktemp("crd-clients"))


@pytest.fixture(scope="module")
def api(server: RunningServer) -> Iterator[client.ApiClient]:
    api_client = config.new_client_from_config(config_file=server.kubeconfig)
    try:
        yield api_client
    finally:
        api_client.close()


@pytest.fixture
def ns(api: client.ApiClient, namespace: str) -> Iterator[str]:
    core: Any = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": namespace}})
    try:
        yield namespace
    finally:
        core.delete_namespace(namespace)


@pytest.fixture
def crd(api: client.ApiClient, request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """(plural, kind) of a CRD made for the test through the official client's typed API,
    Established before the test starts and deleted after it."""
    plural, kind = request.param
    ext: Any = client.ApiextensionsV1Api(api)
    ext.create_custom_resource_definition(definition(plural, kind))

    def established() -> bool:
        got = ext.read_custom_resource_definition(f"{plural}.{GROUP}")
        return any(c.type == "Established" and c.status == "True" for c in got.status.conditions or [])

    wait_until(established, 20, "the CRD is Established")
    try:
        yield plural, kind
    finally:
        ext.delete_custom_resource_definition(f"{plural}.{GROUP}")


@pytest.mark.parametrize("crd", [("notes", "Note")], indirect=True)
def test_dynamic_client_round_trips_a_custom_object(api: client.ApiClient, ns: str, crd: tuple[str, str],
                                                    tmp_path: Path) -> None:
    dyn = dynamic.DynamicClient(api, cache_file=str(tmp_path / "discovery.json"))
    notes = dyn.resources.get(api_version=f"{GROUP}/v1", kind="Note")
    assert (notes.name, notes.namespaced, notes.short_names) == ("notes", True, ["not"])
    assert "status" in notes.subresources
    made = notes.create(namespace=ns, body={"apiVersion": f"{GROUP}/v1", "kind": "Note",
                                            "metadata": {"name": "n1", "junk": 1},
                                            "spec": {"message": "hi", "junk": 1}})
    assert made.spec.to_dict() == {"message": "hi", "count": 1}  # pruned and defaulted
    assert "junk" not in made.metadata.to_dict()
    notes.status.patch(namespace=ns, name="n1", body={"status": {"seen": True}},
                       content_type="application/merge-patch+json")
    notes.patch(namespace=ns, name="n1", body={"spec": {"count": 2}}, content_type="application/merge-patch+json")
    got = notes.get(namespace=ns, name="n1")
    assert got.spec.count == 2 and got.status.seen is True and got.metadata.generation == 2
    assert [i.metadata.name for i in notes.get(namespace=ns).items] == ["n1"]
    with pytest.raises(client.ApiException) as bad:
        notes.patch(namespace=ns, name="n1", body={"spec": {"count": "two"}},
                    content_type="application/merge-patch+json")
    assert bad.value.status == 422 and "spec.count in body must be of type integer" in str(bad.value.body)
    notes.delete(namespace=ns, name="n1")
    assert notes.get(namespace=ns).items == []


@pytest.mark.parametrize("crd", [("memos", "Memo")], indirect=True)
def test_kubernetes_asyncio_round_trips_a_custom_object(server: RunningServer, ns: str, crd: tuple[str, str]
                                                        ) -> None:
    async def go() -> None:
        async with await aconfig.new_client_from_config(config_file=server.kubeconfig) as api:
            objs: Any = aclient.CustomObjectsApi(api)
            body = {"apiVersion": f"{GROUP}/v1", "kind": "Memo", "metadata": {"name": "m1"},
                    "spec": {"message": "one"}}
            made = await objs.create_namespaced_custom_object(GROUP, "v1", ns, "memos", body)
            assert made["spec"] == {"message": "one", "count": 1}
            watch_from = made["metadata"]["resourceVersion"]
            merge = "application/merge-patch+json"
            await objs.patch_namespaced_custom_object(GROUP, "v1", ns, "memos", "m1", {"spec": {"message": "two"}},
                                                      _content_type=merge)
            listed = await objs.list_namespaced_custom_object(GROUP, "v1", ns, "memos",
                                                              resource_version=watch_from, watch=True,
                                                              timeout_seconds=2, _preload_content=False)
            lines = [line async for line in listed.content]
            assert b'"MODIFIED"' in lines[0] and b'"two"' in lines[0]
            await objs.patch_namespaced_custom_object_status(GROUP, "v1", ns, "memos", "m1",
                                                             {"status": {"done": True}}, _content_type=merge)
            got = await objs.get_namespaced_custom_object(GROUP, "v1", ns, "memos", "m1")
            assert got["status"] == {"done": True} and got["spec"]["message"] == "two"
            await objs.delete_namespaced_custom_object(GROUP, "v1", ns, "memos", "m1")

    asyncio.run(go())


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def greetings(api: client.ApiClient) -> Iterator[None]:
    """The example CRD (examples/greeting-crd.yaml), Established, deleted afterwards."""
    crd, _example = yaml.safe_load_all((EXAMPLES / "greeting-crd.yaml").read_text())
    ext: Any = client.ApiextensionsV1Api(api)
    ext.create_custom_resource_definition(crd)
    name = crd["metadata"]["name"]

    def established() -> bool:
        got = ext.read_custom_resource_definition(name)
        return any(c.type == "Established" and c.status == "True" for c in got.status.conditions or [])

    wait_until(established, 20, "the CRD is Established")
    try:
        yield
    finally:
        ext.delete_custom_resource_definition(name)


def test_kopf_operator_reconciles_a_custom_kind(api: client.ApiClient, server: RunningServer, ns: str,
                                                greetings: None, tmp_path: Path) -> None:
    """The example operator (examples/greeting-operator.py), run unchanged by kopf."""
    env = dict(os.environ, KUBECONFIG=server.kubeconfig)
    log = (tmp_path / "kopf.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "kopf", "run", "--standalone", "--namespace", ns,
                             str(EXAMPLES / "greeting-operator.py")], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    objs: Any = client.CustomObjectsApi(api)
    core: Any = client.CoreV1Api(api)

    def status() -> dict[str, Any]:
        got: dict[str, Any] = objs.get_namespaced_custom_object(GROUP, "v1", ns, "greetings", "hello")
        return got.get("status") or {}

    def configmap() -> Any:
        try:
            return core.read_namespaced_config_map("hello-greeting", ns)
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    try:
        objs.create_namespaced_custom_object(GROUP, "v1", ns, "greetings", {
            "apiVersion": f"{GROUP}/v1", "kind": "Greeting", "metadata": {"name": "hello"},
            "spec": {"message": "hello", "count": 2}})
        wait_until(lambda: status().get("phase") == "Greeted", 60, "kopf handled the creation")
        made = configmap()
        assert made.data == {"message": "hello", "count": "2"}
        assert [(o.kind, o.name) for o in made.metadata.owner_references] == [("Greeting", "hello")]
        assert status()["create"] == {"configmap": "hello-greeting"}
        greeting = objs.get_namespaced_custom_object(GROUP, "v1", ns, "greetings", "hello")
        assert "kopf.zalando.org/KopfFinalizerMarker" in greeting["metadata"]["finalizers"]

        objs.patch_namespaced_custom_object(GROUP, "v1", ns, "greetings", "hello", {"spec": {"message": "hi"}})
        wait_until(lambda: status().get("observedMessage") == "hi", 60, "kopf handled the update")
        assert configmap().data["message"] == "hi"

        objs.delete_namespaced_custom_object(GROUP, "v1", ns, "greetings", "hello")

        def gone() -> bool:
            return not objs.list_namespaced_custom_object(GROUP, "v1", ns, "greetings")["items"]

        wait_until(gone, 60, "kopf removed its finalizer and the Greeting is gone")
        wait_until(lambda: configmap() is None, 30, "the garbage collector removed the owned ConfigMap")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
    assert "Handler 'delete' succeeded" in (tmp_path / "kopf.log").read_text()

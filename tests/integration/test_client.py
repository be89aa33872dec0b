"""The REST client against the real API server (and kubeconfig files as kubectl reads them)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.integration.helpers import made_by_test, named, temporary_namespace

from bosun.client import ApiError, Client, KubeconfigError, load_kubeconfig, write_kubeconfig

CM = named("configmaps")
NS = named("namespaces")
DEPLOY = named("deployments")

CA_PEM = b"-----BEGIN CERTIFICATE-----\nnot-checked-here\n-----END CERTIFICATE-----\n"


# -- kubeconfig (no server needed) ---------------------------------------------------------------


def test_written_kubeconfig_loads_back_and_is_private(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "config"
    write_kubeconfig(str(path), server="https://127.0.0.1:6443", ca_pem=CA_PEM, token="s3cret")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = yaml.safe_load(path.read_text())
    assert doc["current-context"] == "bosun"
    assert base64.b64decode(doc["clusters"][0]["cluster"]["certificate-authority-data"]) == CA_PEM
    cfg = load_kubeconfig(str(path))
    assert cfg.server == "https://127.0.0.1:6443"
    assert cfg.ca_data == CA_PEM
    assert cfg.token == "s3cret"
    assert cfg.namespace == "default"
    assert not cfg.insecure


def test_kubernetes_python_client_reads_our_kubeconfig(tmp_path: Path) -> None:
    from kubernetes import config as kconfig
    from kubernetes.client import Configuration

    path = tmp_path / "config"
    write_kubeconfig(str(path), server="https://10.0.0.1:6443", ca_pem=CA_PEM, token="tok",
                     cluster_name="c1", user="me")
    conf = Configuration()
    kconfig.load_kube_config(config_file=str(path), client_configuration=conf)
    assert conf.host == "https://10.0.0.1:6443"
    assert conf.api_key["BearerToken"] == "Bearer tok"


def test_kubeconfig_files_relative_paths_context_and_namespace(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_bytes(CA_PEM)
    (tmp_path / "token").write_text("from-file\n")
    (tmp_path / "config").write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "a",
        "clusters": [
            {"name": "one", "cluster": {"server": "https://one:6443/", "certificate-authority": "ca.crt"}},
            {"name": "two", "cluster": {"server": "https://two:6443", "insecure-skip-tls-verify": True}},
        ],
        "users": [
            {"name": "u1", "user": {"tokenFile": "token"}},
            {"name": "u2", "user": {"client-certificate-data": base64.b64encode(b"CERT").decode(),
                                    "client-key-data": base64.b64encode(b"KEY").decode()}},
        ],
        "contexts": [
            {"name": "a", "context": {"cluster": "one", "user": "u1"}},
            {"name": "b", "context": {"cluster": "two", "user": "u2", "namespace": "team"}},
        ],
    }))
    a = load_kubeconfig(str(tmp_path / "config"))
    assert (a.server, a.ca_data, a.token, a.insecure) == ("https://one:6443", CA_PEM, "from-file", False)
    b = load_kubeconfig(str(tmp_path / "config"), context="b")
    assert (b.server, b.insecure, b.namespace) == ("https://two:6443", True, "team")
    assert (b.client_cert, b.client_key, b.token) == (b"CERT", b"KEY", None)


def test_kubeconfig_comes_from_the_KUBECONFIG_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "kc"
    write_kubeconfig(str(path), server="https://env:1", ca_pem=CA_PEM, token="t")
    monkeypatch.setenv("KUBECONFIG", f"{path}{os.pathsep}/nonexistent")
    assert load_kubeconfig().server == "https://env:1"


@pytest.mark.parametrize(
    ("content", "context", "message"),
    [
        (None, None, "cannot read kubeconfig"),
        (": : not yaml [", None, "not valid YAML"),
        ("apiVersion: v1\nkind: Config\n", None, "no current-context"),
        ("current-context: x\ncontexts: []\n", None, "context 'x' not found"),
        ("current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\n"
         "clusters: [{name: c, cluster: {}}]\n", None, "cluster 'c' has no server"),
    ],
)
def test_bad_kubeconfig_gives_one_clear_line(
    tmp_path: Path, content: str | None, context: str | None, message: str,
) -> None:
    path = tmp_path / "config"
    if content is not None:
        path.write_text(content)
    with pytest.raises(KubeconfigError) as info:
        load_kubeconfig(str(path), context)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)


# -- against the API server -----------------------------------------------------------------------


@pytest.fixture
async def namespace(client: Client) -> AsyncIterator[str]:
    async with temporary_namespace(client, "t") as name:
        yield name


def configmap(name: str, namespace: str | None = None, **data: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {"app": "demo"}}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": dict(data)}


async def test_create_get_update_delete(client: Client, namespace: str) -> None:
    created = await client.create(CM, configmap("one", namespace, k="v"))
    assert created["metadata"]["namespace"] == namespace
    assert created["metadata"]["resourceVersion"]
    assert created["metadata"]["uid"]

    got = await client.get(CM, "one", namespace)
    assert got["data"] == {"k": "v"}

    got["data"]["k"] = "v2"
    updated = await client.update(CM, got)
    assert updated["data"] == {"k": "v2"}
    assert int(updated["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])

    await client.delete(CM, "one", namespace)
    with pytest.raises(ApiError) as info:
        await client.get(CM, "one", namespace)
    assert info.value.status == 404
    assert info.value.reason == "NotFound"
    assert str(info.value) == 'configmaps "one" not found'
    assert info.value.body["kind"] == "Status"


async def test_errors_carry_status_and_reason(client: Client, namespace: str) -> None:
    first = await client.create(CM, configmap("dup", namespace))
    with pytest.raises(ApiError) as exists:
        await client.create(CM, configmap("dup", namespace))
    assert (exists.value.status, exists.value.reason) == (409, "AlreadyExists")

    stale = dict(first)
    await client.patch(CM, "dup", {"data": {"x": "1"}}, namespace)
    with pytest.raises(ApiError) as conflict:
        await client.update(CM, {**stale, "data": {"x": "2"}})
    assert (conflict.value.status, conflict.value.reason) == (409, "Conflict")

    with pytest.raises(ApiError) as invalid:
        await client.create(CM, configmap("Not_A_Valid_Name", namespace))
    assert (invalid.value.status, invalid.value.reason) == (422, "Invalid")
    assert "Not_A_Valid_Name" in str(invalid.value)


async def test_bad_token_is_unauthorized(api_server: Any) -> None:
    c = Client(dataclasses.replace(load_kubeconfig(api_server.kubeconfig), token="wrong"))
    try:
        with pytest.raises(ApiError) as info:
            await c.list(NS)
        assert info.value.status == 401
    finally:
        await c.close()


async def test_namespace_defaults_from_the_object(client: Client, namespace: str) -> None:
    await client.create(CM, configmap("mine", namespace))
    assert (await client.get(CM, "mine", namespace))["metadata"]["name"] == "mine"
    with pytest.raises(ApiError) as info:
        await client.get(CM, "mine")  # the kubeconfig's namespace ("default") is not this one
    assert info.value.status == 404


async def test_patch_types(client: Client, namespace: str) -> None:
    await client.create(CM, configmap("p", namespace, a="1"))
    merged = await client.patch(CM, "p", {"data": {"b": "2"}}, namespace)
    assert merged["data"] == {"a": "1", "b": "2"}
    jsonp = await client.patch(CM, "p", [{"op": "remove", "path": "/data/a"}], namespace, patch_type="json")
    assert jsonp["data"] == {"b": "2"}
    strategic = await client.patch(CM, "p", {"data": {"c": "3"}}, namespace, patch_type="strategic")
    assert strategic["data"] == {"b": "2", "c": "3"}
    dry = await client.patch(CM, "p", {"data": {"d": "4"}}, namespace, dry_run=True)
    assert dry["data"]["d"] == "4"
    assert "d" not in (await client.get(CM, "p", namespace))["data"]
    with pytest.raises(ValueError):
        await client.patch(CM, "p", {}, namespace, patch_type="bogus")


async def test_list_with_selector_and_paging(client: Client, namespace: str) -> None:
    for i in range(5):
        await client.create(CM, configmap(f"c{i}", namespace))
    other = configmap("other", namespace)
    other["metadata"]["labels"] = {"app": "else"}
    await client.create(CM, other)

    page = await client.list(CM, namespace, limit=2)
    assert len(page["items"]) == 2
    assert page["metadata"].get("continue")

    items, rv = await client.list_all(CM, namespace, page_size=2)
    names = sorted(i["metadata"]["name"] for i in made_by_test(items))
    assert names == ["c0", "c1", "c2", "c3", "c4", "other"]
    assert rv

    demo = await client.list(CM, namespace, label_selector="app=demo")
    assert len(demo["items"]) == 5
    by_name = await client.list(CM, namespace, field_selector="metadata.name=other")
    assert [i["metadata"]["name"] for i in by_name["items"]] == ["other"]


async def test_dry_run_create_and_delete_store_nothing(client: Client, namespace: str) -> None:
    await client.create(CM, configmap("dry", namespace), dry_run=True)
    with pytest.raises(ApiError):
        await client.get(CM, "dry", namespace)
    await client.create(CM, configmap("keep", namespace))
    await client.delete(CM, "keep", namespace, dry_run=True)
    assert (await client.get(CM, "keep", namespace))["metadata"]["name"] == "keep"


async def test_delete_with_a_stale_precondition_is_refused(client: Client, namespace: str) -> None:
    obj = await client.create(CM, configmap("pre", namespace))
    with pytest.raises(ApiError) as info:
        await client.delete(CM, "pre", namespace, preconditions={"uid": "not-the-uid"})
    assert info.value.status == 409
    await client.delete(CM, "pre", namespace, preconditions={"uid": obj["metadata"]["uid"]},
                        propagation_policy="Foreground", grace_period_seconds=0)


async def test_cluster_scoped_and_group_resources(client: Client, namespace: str) -> None:
    got = await client.get(NS, namespace)
    assert got["metadata"]["name"] == namespace
    deploy = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "replicas": 1, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "c", "image": "nginx"}]}},
        },
    }
    created = await client.create(DEPLOY, deploy)
    assert created["apiVersion"] == "apps/v1"
    scale = await client.get(DEPLOY, "web", namespace, subresource="scale")
    assert scale["spec"]["replicas"] == 1


async def test_watch_sees_changes_in_order_and_ends_at_timeout(client: Client, namespace: str) -> None:
    _, rv = await client.list_all(CM, namespace)
    events: list[tuple[str, str]] = []

    async def follow() -> None:
        async for ev in client.watch(CM, namespace, resource_version=rv, timeout_seconds=2):
            if ev["type"] != "BOOKMARK":
                events.append((ev["type"], ev["object"]["metadata"]["name"]))

    watcher = asyncio.create_task(follow())
    await client.create(CM, configmap("w", namespace))
    await client.patch(CM, "w", {"data": {"x": "1"}}, namespace)
    await client.delete(CM, "w", namespace)
    await asyncio.wait_for(watcher, 10)  # the server ends the watch after timeout_seconds
    assert events == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]


async def test_watch_with_selector_filters(client: Client, namespace: str) -> None:
    _, rv = await client.list_all(CM, namespace)
    other = configmap("skip", namespace)
    other["metadata"]["labels"] = {"app": "else"}
    await client.create(CM, other)
    await client.create(CM, configmap("take", namespace))
    names = [
        ev["object"]["metadata"]["name"]
        async for ev in client.watch(CM, namespace, resource_version=rv, label_selector="app=demo",
                                     timeout_seconds=1)
        if ev["type"] != "BOOKMARK"
    ]
    assert names == ["take"]

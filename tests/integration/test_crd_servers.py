"""CustomResourceDefinitions across servers. On etcd, with two API servers sharing it: a CRD
made through one server is Established and served by both (each serves what its watch cache
sees), objects written through one are read and validated by the other, a namespace's deletion
empties it of custom objects, and the CRD's deletion removes them everywhere. A restarted
server serves its store's CRDs before it answers its first request."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from tests.conftest import start_server
from tests.e2e.helpers import wait_until


def _crd(group: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"backups.{group}"},
        "spec": {"group": group, "scope": "Namespaced", "names": {"plural": "backups", "kind": "Backup"},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                     "type": "object", "properties": {"spec": {"type": "object", "properties": {
                         "keep": {"type": "integer", "minimum": 1, "default": 3}}}}}}}]},
    }


def test_two_servers_on_etcd_serve_one_crd(tmp_path: Path, etcd_endpoint: str) -> None:
    group = f"b{uuid.uuid4().hex[:8]}.example.com"  # the session's etcd is shared by other tests
    a = start_server(tmp_path / "a", store_url=f"etcd://{etcd_endpoint}")
    b = start_server(tmp_path / "b", store_url=f"etcd://{etcd_endpoint}")
    api_a = config.new_client_from_config(config_file=a.kubeconfig)
    api_b = config.new_client_from_config(config_file=b.kubeconfig)
    try:
        ext_a: Any = client.ApiextensionsV1Api(api_a)
        objs_a: Any = client.CustomObjectsApi(api_a)
        objs_b: Any = client.CustomObjectsApi(api_b)
        core_a: Any = client.CoreV1Api(api_a)
        ns = f"t-{uuid.uuid4().hex[:8]}"
        core_a.create_namespace({"metadata": {"name": ns}})
        ext_a.create_custom_resource_definition(_crd(group))

        def served_on_b() -> bool:
            try:
                objs_b.list_namespaced_custom_object(group, "v1", ns, "backups")
            except client.ApiException as exc:
                if exc.status == 404:
                    return False
                raise
            return True

        wait_until(served_on_b, 30, "server b serves the CRD made through server a")
        body = {"apiVersion": f"{group}/v1", "kind": "Backup", "metadata": {"name": "nightly"}, "spec": {}}
        made = objs_b.create_namespaced_custom_object(group, "v1", ns, "backups", body)
        assert made["spec"] == {"keep": 3}
        assert objs_a.get_namespaced_custom_object(group, "v1", ns, "backups", "nightly")["spec"] == {"keep": 3}
        with pytest.raises(client.ApiException) as bad:
            objs_a.patch_namespaced_custom_object(group, "v1", ns, "backups", "nightly", {"spec": {"keep": 0}})
        assert bad.value.status == 422 and "spec.keep in body should be greater than or equal to 1" in str(
            bad.value.body)

        core_a.delete_namespace(ns)  # the namespace finalizer empties it of custom objects too

        def namespace_gone() -> bool:
            try:
                core_a.read_namespace(ns)
            except client.ApiException as exc:
                return exc.status == 404
            return False

        wait_until(namespace_gone, 30, "the namespace and its Backup are gone")
        ns2 = f"t-{uuid.uuid4().hex[:8]}"
        core_a.create_namespace({"metadata": {"name": ns2}})
        objs_a.create_namespaced_custom_object(group, "v1", ns2, "backups", body)
        ext_a.delete_custom_resource_definition(f"backups.{group}")
        wait_until(lambda: not served_on_b(), 30, "server b no longer serves the deleted CRD")
        # Recreated, the kind starts empty: the CRD's deletion removed its objects.
        ext_a.create_custom_resource_definition(_crd(group))
        wait_until(served_on_b, 30, "served again")
        assert objs_b.list_namespaced_custom_object(group, "v1", ns2, "backups")["items"] == []
        ext_a.delete_custom_resource_definition(f"backups.{group}")
        core_a.delete_namespace(ns2)
    finally:
        api_a.close()
        api_b.close()
        b.stop()
        a.stop()


def test_a_restarted_server_serves_its_crds_from_the_start(tmp_path: Path) -> None:
    group = "restart.example.com"
    first = start_server(tmp_path / "s")
    try:
        api = config.new_client_from_config(config_file=first.kubeconfig)
        ext: Any = client.ApiextensionsV1Api(api)
        objs: Any = client.CustomObjectsApi(api)
        ext.create_custom_resource_definition(_crd(group))
        body = {"apiVersion": f"{group}/v1", "kind": "Backup", "metadata": {"name": "kept"}, "spec": {"keep": 7}}
        wait_until(lambda: _created(objs, group, body), 20, "the CRD is served")
        api.close()
    finally:
        first.stop()
    second = start_server(tmp_path / "s")
    try:
        api = config.new_client_from_config(config_file=second.kubeconfig)
        objs = client.CustomObjectsApi(api)
        # No wait: the server lists its CRDs before it answers a request.
        got = objs.get_namespaced_custom_object(group, "v1", "default", "backups", "kept")
        assert got["spec"] == {"keep": 7}
        api.close()
    finally:
        second.stop()


def _created(objs: Any, group: str, body: dict[str, Any]) -> bool:
    try:
        objs.create_namespaced_custom_object(group, "v1", "default", "backups", body)
    except client.ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def test_names_in_use_wait_until_they_are_free(tmp_path: Path) -> None:
    group = "names.example.com"
    server = start_server(tmp_path / "s")
    api = config.new_client_from_config(config_file=server.kubeconfig)
    try:
        ext: Any = client.ApiextensionsV1Api(api)
        ext.create_custom_resource_definition(_crd(group))
        wait_until(lambda: _condition(ext, f"backups.{group}", "Established") == ("True", "InitialNamesAccepted"),
                   20, "the first CRD is Established")
        second = _crd(group)
        second["metadata"]["name"] = f"archives.{group}"
        second["spec"]["names"]["plural"] = "archives"  # the same kind and singular (backup)
        ext.create_custom_resource_definition(second)
        wait_until(lambda: _condition(ext, f"archives.{group}", "NamesAccepted")[0] == "False", 20,
                   "the second CRD's names are refused")
        got = ext.read_custom_resource_definition(f"archives.{group}")
        accepted = next(c for c in got.status.conditions if c.type == "NamesAccepted")
        assert (accepted.reason, accepted.message) == ("NameConflict", '"backup" is already in use')
        assert _condition(ext, f"archives.{group}", "Established")[0] == "False"
        ext.delete_custom_resource_definition(f"backups.{group}")
        wait_until(lambda: _condition(ext, f"archives.{group}", "Established")[0] == "True", 20,
                   "the second CRD is Established once the names are free")
        ext.delete_custom_resource_definition(f"archives.{group}")
    finally:
        api.close()
        server.stop()


def _condition(ext: Any, name: str, typ: str) -> tuple[str, str]:
    got = ext.read_custom_resource_definition(name)
    for c in got.status.conditions or []:
        if c.type == typ:
            return c.status, c.reason
    return "", ""

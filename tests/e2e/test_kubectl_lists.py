"""kubectl 1.32 with ``kind: List`` documents (``kubectl get ... -o json | kubectl replace -f -``,
``kubectl apply -f`` of ``get -o yaml`` output): kubectl cannot leave a List to the server's
fieldValidation, so it validates on the client against /openapi/v2, fetched as protobuf."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import RunningServer

from bosun.api.openapi import V2_PROTOBUF
from bosun.api.openapi_proto import decode_document

KUBECTL = "/usr/bin/kubectl"


class Kubectl:
    def __init__(self, kubeconfig: str, namespace: str, cache_dir: Path) -> None:
        self.base = [KUBECTL, "--kubeconfig", kubeconfig, "-n", namespace]
        self.env = dict(os.environ, KUBECACHEDIR=str(cache_dir), HOME=str(cache_dir))

    def __call__(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        p = subprocess.run([*self.base, *args], input=input, capture_output=True, text=True, timeout=60,
                           env=self.env)
        if check and p.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p

    def data(self, name: str) -> Any:
        return json.loads(self("get", "configmap", name, "-o", "json").stdout).get("data")


@pytest.fixture
def kubectl(api_server: RunningServer, namespace: str, tmp_path: Path) -> Iterator[Kubectl]:
    k = Kubectl(api_server.kubeconfig, namespace, tmp_path / "kubecache")
    k("create", "namespace", namespace)
    try:
        yield k
    finally:
        k("delete", "namespace", namespace, "--wait=false", check=False)


def _list(*items: str) -> str:
    return "apiVersion: v1\nkind: List\nitems:\n" + "".join(items)


def _cm(name: str, value: str, extra: str = "") -> str:
    return f"- apiVersion: v1\n  kind: ConfigMap\n  metadata: {{name: {name}}}\n  data: {{k: '{value}'}}\n{extra}"


def test_replace_of_a_list_from_get_validates_and_changes_both(kubectl: Kubectl) -> None:
    kubectl("create", "configmap", "a", "--from-literal=k=1")
    kubectl("create", "configmap", "b", "--from-literal=k=2")
    dump = json.loads(kubectl("get", "configmaps", "a", "b", "-o", "json").stdout)
    assert dump["kind"] == "List"
    for item in dump["items"]:
        item["data"]["k"] += "0"
    out = kubectl("replace", "-f", "-", input=json.dumps(dump)).stdout
    assert "configmap/a replaced" in out and "configmap/b replaced" in out
    assert kubectl.data("a") == {"k": "10"} and kubectl.data("b") == {"k": "20"}


def test_apply_of_a_list_file(kubectl: Kubectl, tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text(_list(_cm("a", "1"), _cm("b", "2")))
    assert "configmap/a created" in kubectl("apply", "-f", str(path)).stdout
    path.write_text(_list(_cm("a", "1"), _cm("b", "3")))
    out = kubectl("apply", "-f", str(path)).stdout
    assert "configmap/a unchanged" in out and "configmap/b configured" in out
    assert kubectl.data("b") == {"k": "3"}


def test_unknown_field_in_a_list_item_is_refused_by_kubectl_unless_validation_is_off(kubectl: Kubectl) -> None:
    doc = _list(_cm("a", "1"), _cm("b", "2", extra="  x: 1\n"))
    p = kubectl("apply", "-f", "-", input=doc, check=False)
    assert p.returncode != 0
    assert 'unknown field "x"' in p.stderr and "--validate=false" in p.stderr
    assert kubectl("get", "configmap", "a", check=False).returncode != 0  # nothing was sent
    nested = _list("- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: c, bogus: 1}\n")
    p = kubectl("apply", "-f", "-", input=nested, check=False)
    assert p.returncode != 0 and 'unknown field "bogus"' in p.stderr
    out = kubectl("apply", "--validate=false", "-f", "-", input=doc).stdout
    assert "configmap/b created" in out
    assert kubectl.data("b") == {"k": "2"}


def _get_v2(server: RunningServer, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    ctx = ssl.create_default_context(cafile=server.ca_path)
    ctx.check_hostname = False
    req = urllib.request.Request(server.url + "/openapi/v2",
                                 headers={"Authorization": f"Bearer {server.token}", **headers})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_v2_protobuf_over_http_decodes_with_pod_and_revalidates(api_server: RunningServer) -> None:
    status, headers, body = _get_v2(api_server, {"Accept": V2_PROTOBUF})
    assert status == 200
    assert headers["Content-Type"] == "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    doc = decode_document(body)
    names = {ns.name for ns in doc.definitions.additional_properties}
    assert "io.k8s.api.core.v1.Pod" in names
    status, _, body = _get_v2(api_server, {"Accept": V2_PROTOBUF, "If-None-Match": headers["ETag"]})
    assert status == 304 and body == b""
    status, headers, body = _get_v2(api_server, {"Accept": "application/json"})
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert "io.k8s.api.core.v1.Pod" in json.loads(body)["definitions"]

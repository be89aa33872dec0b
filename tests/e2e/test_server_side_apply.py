"""Server-side apply and managedFields through real kubectl (what GitOps tools use): two
managers, a conflict naming the field and its owner, --force-conflicts, fields a manager
stops declaring removed (and kept while another owns them), kubectl diff, the move from
client-side apply, and the bad requests."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import RunningServer
from tests.e2e.test_kubectl import Kubectl

WEB = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web, tier: front}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: c
        image: nginx:1.25
        env: [{name: A, value: "1"}]
"""


@pytest.fixture
def kubectl(api_server: RunningServer, namespace: str, tmp_path: Path) -> Iterator[Kubectl]:
    k = Kubectl(api_server.kubeconfig, namespace, tmp_path / "kubecache")
    k("create", "namespace", namespace, ns=False)
    try:
        yield k
    finally:
        k("delete", "namespace", namespace, "--wait=false", ns=False, check=False)


def managers(obj: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["manager"], e["operation"]): e for e in obj["metadata"].get("managedFields") or []}


def test_two_managers_conflict_force_and_removal(kubectl: Kubectl) -> None:
    out = kubectl("apply", "--server-side", "-f", "-", input=WEB)
    assert "deployment.apps/web serverside-applied" in out.stdout
    live = json.loads(kubectl("get", "deploy", "web", "-o", "json", "--show-managed-fields").stdout)
    entry = managers(live)[("kubectl", "Apply")]
    assert set(entry) == {"manager", "operation", "apiVersion", "time", "fieldsType", "fieldsV1"}
    assert entry["fieldsType"] == "FieldsV1" and entry["apiVersion"] == "apps/v1"
    container = entry["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"c"}']
    assert container["."] == {} and container["f:image"] == {}
    # Not shown unless asked, as upstream's kubectl does.
    assert "managedFields" not in kubectl.json("get", "deploy", "web")["metadata"]

    # Another manager (declaring only what it cares about) changing a field kubectl owns is
    # refused, naming both.
    other = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      containers:
      - name: c
        image: nginx:1.27
        env: [{name: A, value: "1"}]
"""
    refused = kubectl("apply", "--server-side", "--field-manager=ci", "-f", "-", input=other, check=False)
    assert refused.returncode != 0
    assert ('Apply failed with 1 conflict: conflict with "kubectl" using apps/v1: '
            '.spec.template.spec.containers[name="c"].image') in refused.stderr
    assert kubectl.json("get", "deploy", "web")["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"
    # Forced, the field changes hands.
    kubectl("apply", "--server-side", "--field-manager=ci", "--force-conflicts", "-f", "-", input=other)
    live = json.loads(kubectl("get", "deploy", "web", "-o", "json", "--show-managed-fields").stdout)
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27"
    kubectl_fields = json.dumps(managers(live)[("kubectl", "Apply")]["fieldsV1"])
    assert "f:image" not in kubectl_fields and "f:image" in json.dumps(managers(live)[("ci", "Apply")]["fieldsV1"])

    # kubectl stops declaring the tier label: it goes. ci still declares the env var: it stays.
    # (kubectl now declares the image ci set, co-owning it: no conflict.)
    trimmed = yaml.safe_load(WEB.replace("nginx:1.25", "nginx:1.27"))
    del trimmed["metadata"]["labels"]["tier"]
    del trimmed["spec"]["template"]["spec"]["containers"][0]["env"]
    kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(trimmed))
    live = kubectl.json("get", "deploy", "web")
    assert live["metadata"]["labels"] == {"app": "web"}
    assert live["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "A", "value": "1"}]


def test_scale_then_apply_conflicts_with_the_scale_subresource(kubectl: Kubectl) -> None:
    kubectl("apply", "--server-side", "-f", "-", input=WEB)
    kubectl("scale", "deploy", "web", "--replicas=5")
    refused = kubectl("apply", "--server-side", "-f", "-", input=WEB, check=False)
    assert refused.returncode != 0
    assert 'with subresource "scale" using apps/v1: .spec.replicas' in refused.stderr
    diff = kubectl("diff", "--server-side", "--force-conflicts", "-f", "-", input=WEB, check=False)
    assert diff.returncode == 1 and "-  replicas: 5" in diff.stdout and "+  replicas: 2" in diff.stdout
    assert kubectl.json("get", "deploy", "web")["spec"]["replicas"] == 5  # diff wrote nothing


def test_moving_from_client_side_apply(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", input=WEB)  # client-side, with its last-applied annotation
    live = json.loads(kubectl("get", "deploy", "web", "-o", "json", "--show-managed-fields").stdout)
    assert ("kubectl-client-side-apply", "Update") in managers(live)
    upgraded = kubectl("apply", "--server-side", "-f", "-", input=WEB)
    assert "serverside-applied" in upgraded.stdout
    live = json.loads(kubectl("get", "deploy", "web", "-o", "json", "--show-managed-fields").stdout)
    assert ("kubectl", "Apply") in managers(live)
    # The fields are now kubectl's to remove: dropping a label from the manifest removes it.
    trimmed = yaml.safe_load(WEB)
    del trimmed["metadata"]["labels"]["tier"]
    kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(trimmed))
    assert kubectl.json("get", "deploy", "web")["metadata"]["labels"] == {"app": "web"}


def _patch(server: RunningServer, path: str, body: bytes, query: str = "") -> tuple[int, dict[str, Any]]:
    cfg = yaml.safe_load(Path(server.kubeconfig).read_text())
    token = cfg["users"][0]["user"]["token"]
    ctx = ssl.create_default_context(cafile=str(server.data_dir / "pki" / "ca.crt"))
    req = urllib.request.Request(f"{server.url}{path}{query}", data=body, method="PATCH",
                                 headers={"Authorization": f"Bearer {token}",
                                          "Content-Type": "application/apply-patch+yaml"})
    try:
        with urllib.request.urlopen(req, context=ctx) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def test_bad_apply_requests(api_server: RunningServer, kubectl: Kubectl, namespace: str) -> None:
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments/web"
    code, status = _patch(api_server, path, WEB.encode())
    assert (code, status["reason"]) == (400, "BadRequest") and "fieldManager" in status["message"]
    code, status = _patch(api_server, path, b"spec: {replicas: 3}\n", "?fieldManager=x")
    assert code == 400 and "apiVersion and kind" in status["message"]
    code, status = _patch(api_server, path, WEB.replace("kind: Deployment", "kind: StatefulSet").encode(),
                          "?fieldManager=x")
    assert code == 400 and "Kind=StatefulSet" in status["message"]
    code, status = _patch(api_server, path, WEB.replace("replicas: 2", "replicas: two").encode(), "?fieldManager=x")
    assert code == 400 and "cannot unmarshal string" in status["message"]
    # A well-formed apply of an object that does not exist creates it.
    code, created = _patch(api_server, path, WEB.encode(), "?fieldManager=x")
    assert code == 201 and created["metadata"]["managedFields"][0]["manager"] == "x"

"""CustomResourceDefinitions through real kubectl (v1.32): created, Established, served with
discovery and OpenAPI, validated (422 with field paths), pruned, defaulted, printed, scaled,
found by short name and category, and deleted with their objects."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import RunningServer, served
from tests.e2e.helpers import wait_until

KUBECTL = "/usr/bin/kubectl"

WIDGETS = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.crd.example.com
spec:
  group: crd.example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd], categories: [gadgets]}
  versions:
  - name: v1beta1
    served: true
    storage: false
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas,
              labelSelectorPath: .status.selector}
    selectableFields:
    - {jsonPath: .spec.color}
    additionalPrinterColumns:
    - {name: Replicas, type: integer, jsonPath: .spec.replicas}
    - {name: Color, type: string, jsonPath: .spec.color}
    - {name: Phase, type: string, jsonPath: .status.phase, priority: 1}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            x-kubernetes-validations:
            - {rule: "self.replicas <= self.maxReplicas", message: "replicas must not exceed maxReplicas"}
            properties:
              size: {type: string, pattern: '^[a-z]+$', maxLength: 8}
              replicas: {type: integer, minimum: 0, default: 1}
              maxReplicas: {type: integer, default: 5}
              color: {type: string, enum: [red, blue], default: red}
              port: {x-kubernetes-int-or-string: true}
              extra: {type: object, x-kubernetes-preserve-unknown-fields: true}
              template: {type: object, x-kubernetes-embedded-resource: true,
                         x-kubernetes-preserve-unknown-fields: true}
              tags: {type: array, items: {type: string}, x-kubernetes-list-type: set}
              ports:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [name]
                items:
                  type: object
                  required: [name]
                  properties: {name: {type: string}, port: {type: integer}}
          status:
            type: object
            properties:
              replicas: {type: integer}
              selector: {type: string}
              phase: {type: string}
"""

CLUSTER_SCOPED = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: regions.crd.example.com
spec:
  group: crd.example.com
  scope: Cluster
  names: {plural: regions, kind: Region}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {zone: {type: string}}}
"""


class Kubectl:
    def __init__(self, kubeconfig: str, namespace: str, cache_dir: Path) -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.env = dict(os.environ, KUBECACHEDIR=str(cache_dir), HOME=str(cache_dir))

    def __call__(self, *args: str, input: str | None = None, check: bool = True
                 ) -> subprocess.CompletedProcess[str]:
        cmd = [KUBECTL, "--kubeconfig", self.kubeconfig, "-n", self.namespace, *args]
        p = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=60, env=self.env)
        if check and p.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "-o", "json").stdout)

    def fails(self, *args: str, input: str | None = None) -> str:
        p = self(*args, input=input, check=False)
        assert p.returncode != 0, p.stdout
        return p.stderr.strip()


@pytest.fixture(scope="module")
def crd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server of this module's own: CRDs are cluster-wide."""
    yield from served(tmp_path_factory.mktemp("crd-server"))


@pytest.fixture
def kubectl(crd_server: RunningServer, namespace: str, tmp_path: Path) -> Iterator[Kubectl]:
    k = Kubectl(crd_server.kubeconfig, namespace, tmp_path / "kubecache")
    k("create", "namespace", namespace)
    try:
        yield k
    finally:
        k("delete", "crd", "widgets.crd.example.com", "regions.crd.example.com", "--ignore-not-found",
          check=False)
        k("delete", "namespace", namespace, "--wait=false", check=False)


def widget(name: str, **spec: Any) -> str:
    return yaml.safe_dump({"apiVersion": "crd.example.com/v1", "kind": "Widget", "metadata": {"name": name},
                           "spec": spec})


def test_crd_lifecycle_with_kubectl(kubectl: Kubectl) -> None:
    # An unknown kind is "no matches", not "failed to check CRD".
    assert 'no matches for kind "Widget" in version "crd.example.com/v1"' in kubectl.fails(
        "apply", "-f", "-", input=widget("early", size="s"))

    kubectl("apply", "-f", "-", input=WIDGETS)
    kubectl("wait", "--for=condition=Established", "crd/widgets.crd.example.com", "--timeout=20s")
    crd = kubectl.json("get", "crd", "widgets.crd.example.com")
    conds = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conds == {"NamesAccepted": "True", "Established": "True"}
    assert crd["status"]["acceptedNames"]["kind"] == "Widget" and crd["status"]["storedVersions"] == ["v1"]
    assert "widgets.crd.example.com" in kubectl("get", "crd").stdout

    # Discovery (aggregated, as kubectl asks) and OpenAPI v3 (kubectl explain).
    resources = kubectl("api-resources", "--api-group=crd.example.com", "-o", "wide").stdout
    assert "widgets" in resources and "wd" in resources and "gadgets" in resources
    assert "<integer>" in kubectl("explain", "widgets.spec.replicas").stdout

    # Created: unknown fields refused (kubectl asks for fieldValidation=Strict) or pruned
    # (--validate=false); defaults filled in; preserved, embedded and int-or-string fields kept.
    out = kubectl.fails("apply", "-f", "-", input=widget("w1", size="s", bogus=1))
    assert 'strict decoding error: unknown field "spec.bogus"' in out
    kubectl("apply", "--validate=false", "-f", "-",
            input=widget("w1", size="small", port="http", extra={"any": {"thing": 1}}, bogus=1,
                         template={"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "x": 1}))
    w1 = kubectl.json("get", "widget", "w1")
    assert w1["spec"] == {"size": "small", "port": "http", "extra": {"any": {"thing": 1}}, "replicas": 1,
                          "maxReplicas": 5, "color": "red",
                          "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "x": 1}}
    assert "status" not in w1

    # Validated: 422 with each field's path and Kubernetes' message.
    bad = kubectl.fails("apply", "-f", "-", input=widget("w2", size="Big!", replicas=-1, color="pink",
                                                          tags=["a", "a"], port=1.5,
                                                          ports=[{"name": "a"}, {"name": "a"}]))
    assert 'The Widget "w2" is invalid' in bad
    for part in ('spec.size: Invalid value: "Big!": spec.size in body should match \'^[a-z]+$\'',
                 "spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0",
                 'spec.color: Unsupported value: "pink": supported values: "red", "blue"',
                 'spec.tags[1]: Duplicate value: "a"',
                 'spec.port: Invalid value: "number": spec.port in body must be of type integer or string',
                 "spec.ports[1]: Duplicate value"):
        assert part in bad, bad
    missing = kubectl.fails("apply", "-f", "-", input=widget("w2", replicas=1))
    assert "spec.size: Required value" in missing
    cel = kubectl.fails("apply", "-f", "-", input=widget("w2", size="s", replicas=9))
    assert 'spec: Invalid value: "object": replicas must not exceed maxReplicas' in cel

    # Printer columns, short names and categories.
    table = kubectl("get", "wd").stdout.splitlines()
    assert table[0].split() == ["NAME", "REPLICAS", "COLOR"] and table[1].split()[:3] == ["w1", "1", "red"]
    assert "PHASE" in kubectl("get", "widgets", "-o", "wide").stdout
    assert kubectl("get", "gadgets", "-o", "name").stdout.split() == ["widget.crd.example.com/w1"]
    assert kubectl("get", "wd", "--field-selector=spec.color=red", "-o", "name").stdout.split() == [
        "widget.crd.example.com/w1"]
    assert kubectl("get", "wd", "--field-selector=spec.color=blue", "-o", "name").stdout == ""
    assert "field label not supported: spec.size" in kubectl.fails("get", "wd", "--field-selector=spec.size=s")

    # status and scale subresources (kubectl scale goes through .../scale).
    kubectl("scale", "widget", "w1", "--replicas=3")
    assert kubectl.json("get", "widget", "w1")["spec"]["replicas"] == 3
    kubectl("patch", "widget", "w1", "--subresource=status", "--type=merge",
            "-p", '{"status":{"replicas":3,"selector":"app=w1","phase":"Ready"},"spec":{"replicas":0}}')
    w1 = kubectl.json("get", "widget", "w1")
    assert w1["status"] == {"replicas": 3, "selector": "app=w1", "phase": "Ready"} and w1["spec"]["replicas"] == 3
    kubectl("patch", "widget", "w1", "--type=merge", "-p", '{"status":{"phase":"Lost"}}')
    assert kubectl.json("get", "widget", "w1")["status"]["phase"] == "Ready"  # spec writes keep status
    scale = json.loads(kubectl("get", "--raw",
                               f"/apis/crd.example.com/v1/namespaces/{kubectl.namespace}/widgets/w1/scale").stdout)
    assert scale["spec"]["replicas"] == 3 and scale["status"] == {"replicas": 3, "selector": "app=w1"}
    assert "replicas must not exceed maxReplicas" in kubectl.fails("scale", "widget", "w1", "--replicas=7")
    assert kubectl.json("get", "widget", "w1")["spec"]["replicas"] == 3

    # Another served version of the same objects (conversion: None).
    old = kubectl.json("get", "widgets.v1beta1.crd.example.com", "w1")
    assert old["apiVersion"] == "crd.example.com/v1beta1" and old["spec"]["replicas"] == 3

    # Deleting the CRD deletes its objects, then the kind is no longer served.
    kubectl("delete", "crd", "widgets.crd.example.com", "--timeout=30s")
    fresh = kubectl.env["KUBECACHEDIR"] + "-after"  # kubectl's discovery cache still lists the kind
    assert "no matches for kind" in kubectl.fails("--cache-dir", fresh, "apply", "-f", "-",
                                                  input=widget("w3", size="s"))
    kubectl("apply", "-f", "-", input=WIDGETS)
    kubectl("wait", "--for=condition=Established", "crd/widgets.crd.example.com", "--timeout=20s")
    assert kubectl.json("get", "widgets")["items"] == []


def test_cluster_scoped_crd(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", input=CLUSTER_SCOPED)
    kubectl("wait", "--for=condition=Established", "crd/regions.crd.example.com", "--timeout=20s")
    kubectl("apply", "-f", "-", input="apiVersion: crd.example.com/v1\nkind: Region\nmetadata: {name: eu}\n"
                                      "spec: {zone: eu-1}\n")
    region = kubectl.json("get", "region", "eu")
    assert "namespace" not in region["metadata"] and region["spec"] == {"zone": "eu-1"}
    assert kubectl("get", "regions").stdout.split()[:3] == ["NAME", "AGE", "eu"]
    # The CRD changes: the new schema is served at once (here: a field it did not have).
    capital = "apiVersion: crd.example.com/v1\nkind: Region\nmetadata: {name: eu}\nspec: {capital: bxl}\n"
    assert 'unknown field "spec.capital"' in kubectl.fails("apply", "-f", "-", input=capital)
    kubectl("patch", "crd", "regions.crd.example.com", "--type=json", "-p",
            '[{"op": "add", "path": "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/capital",'
            ' "value": {"type": "string"}}]')
    wait_until(lambda: kubectl("apply", "-f", "-", input=capital, check=False).returncode == 0, 20,
               "the changed schema is served")
    assert kubectl.json("get", "region", "eu")["spec"] == {"capital": "bxl"}  # apply dropped zone

    # A CRD whose objects have finalizers waits for them, Terminating, taking no new objects.
    kubectl("patch", "region", "eu", "--type=merge", "-p", '{"metadata":{"finalizers":["example.com/hold"]}}')
    kubectl("delete", "crd", "regions.crd.example.com", "--wait=false")
    wait_until(lambda: any(c["type"] == "Terminating" and c["status"] == "True" for c in kubectl.json(
        "get", "crd", "regions.crd.example.com")["status"]["conditions"]), 20, "the CRD is Terminating")
    assert kubectl.json("get", "region", "eu")["metadata"].get("deletionTimestamp")
    refused = kubectl.fails("create", "-f", "-", input=capital.replace("name: eu", "name: us"))
    assert "Error from server (MethodNotAllowed)" in refused, refused
    kubectl("patch", "region", "eu", "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
    kubectl("wait", "--for=delete", "crd/regions.crd.example.com", "--timeout=20s")


@pytest.mark.parametrize("change, message", [
    (lambda c: c["spec"]["versions"][0].update(storage=False),
     "spec.versions: Invalid value: must have exactly one version marked as storage version"),
    (lambda c: c["spec"]["versions"].append(dict(c["spec"]["versions"][0], name="v2")),
     "spec.versions: Invalid value: must have exactly one version marked as storage version"),
    (lambda c: c["metadata"].update(name="wrong.crd.example.com"),
     'metadata.name: Invalid value: "wrong.crd.example.com": must be spec.names.plural+"."+spec.group'),
    (lambda c: c["spec"]["names"].update(plural="Regions"),
     'spec.names.plural: Invalid value: "Regions": a lowercase RFC 1123 label must consist of'),
    (lambda c: c["spec"].update(scope="Global"),
     'spec.scope: Unsupported value: "Global": supported values: "Cluster", "Namespaced"'),
    (lambda c: c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"].pop("type"),
     "spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: must not be empty "
     "for specified object fields"),
    (lambda c: c["spec"]["versions"][0]["schema"]["openAPIV3Schema"].update(
        {"x-kubernetes-validations": [{"rule": "self.spec.zone =="}]}),
     "spec.versions[0].schema.openAPIV3Schema.x-kubernetes-validations[0].rule: Invalid value: "
     '"self.spec.zone ==": compilation failed'),
])
def test_invalid_crds_are_refused_with_kubernetes_messages(kubectl: Kubectl, change: Any, message: str) -> None:
    crd = yaml.safe_load(CLUSTER_SCOPED)
    change(crd)
    out = kubectl.fails("apply", "-f", "-", input=yaml.safe_dump(crd))
    assert "CustomResourceDefinition" in out and "is invalid" in out and message in out, out


GIZMOS = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gizmos.crd.example.com
spec:
  group: crd.example.com
  scope: Namespaced
  names: {plural: gizmos, singular: gizmo, kind: Gizmo}
  versions:
  - name: v1alpha1
    served: true
    storage: false
    deprecated: true
    deprecationWarning: "crd.example.com/v1alpha1 Gizmo is going away; move to crd.example.com/v1"
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
  - name: v1beta1
    served: true
    storage: false
    deprecated: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
"""


def test_deprecated_crd_versions_warn_on_every_request(kubectl: Kubectl) -> None:
    try:
        kubectl("apply", "-f", "-", input=GIZMOS)
        kubectl("wait", "--for=condition=Established", "crd/gizmos.crd.example.com", "--timeout=30s")
        custom = "Warning: crd.example.com/v1alpha1 Gizmo is going away; move to crd.example.com/v1"
        made = kubectl("create", "-f", "-", input=yaml.safe_dump(
            {"apiVersion": "crd.example.com/v1alpha1", "kind": "Gizmo", "metadata": {"name": "old"}}))
        assert custom in made.stderr, made.stderr
        for args in (("get", "gizmos.v1alpha1.crd.example.com", "old"), ("get", "gizmos.v1alpha1.crd.example.com")):
            assert custom in kubectl(*args).stderr, args
        default = "Warning: crd.example.com/v1beta1 Gizmo is deprecated"
        listed = kubectl("get", "gizmos.v1beta1.crd.example.com", "-o", "name")
        assert default in listed.stderr and "gizmo.crd.example.com/old" in listed.stdout, listed
        # the served version that is not deprecated says nothing
        current = kubectl("get", "gizmos.v1.crd.example.com", "old")
        assert "Warning" not in current.stderr, current.stderr
        gone = kubectl("delete", "gizmos.v1alpha1.crd.example.com", "old")
        assert custom in gone.stderr, gone.stderr
    finally:
        kubectl("delete", "crd", "gizmos.crd.example.com", "--ignore-not-found", check=False)

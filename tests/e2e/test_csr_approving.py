"""The csrapproving controller end to end: a real server running it with the CSR signer, real
kubectl, identities that are client certificates the cluster issued. Kubelet client requests
are approved (and then issued) once RBAC lets their requester have them, a bootstrapper's via
``certificatesigningrequests/nodeclient``, a node's renewal of its own via ``.../selfnodeclient``;
everything else waits for a person."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tests.conftest import RunningServer, served
from tests.e2e.helpers import Kubectl
from tests.e2e.test_certificates import (
    cert_kubeconfig,
    conditions,
    csr_manifest,
    get_csr,
    issued,
    new_key,
    ok,
    request_pem,
)

from bosun.component import ControlPlaneOptions

KUBELET = "kubernetes.io/kube-apiserver-client-kubelet"
KUBELET_USAGES = ("digital signature", "key encipherment", "client auth")
SELF = "Auto approving self kubelet client certificate after SubjectAccessReview."
BOOTSTRAP = "Auto approving kubelet client certificate after SubjectAccessReview."


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    options = ControlPlaneOptions(controllers=["csrsigning", "csrapproving"], scheduler=False)
    yield from served(tmp_path_factory.mktemp("csr-approving"), options=options)


@pytest.fixture(scope="module")
def kubectl(server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(server.kubeconfig, str(tmp_path_factory.mktemp("kubectl-home")))


def identity(server: RunningServer, kubectl: Kubectl, tmp: Path, cn: str, org: str) -> Kubectl:
    """kubectl as ``cn`` in group ``org``: a client certificate an administrator approved."""
    key = new_key()
    name = f"id-{cn.replace(':', '-')}"
    ok(kubectl("create", "-f", "-", stdin=csr_manifest(name, request_pem(key, cn, (org,)))))
    time.sleep(1)  # the approver has had its chance, and leaves a plain client request alone
    assert conditions(get_csr(kubectl, name)) == {}
    ok(kubectl("certificate", "approve", name))
    tmp.mkdir(parents=True, exist_ok=True)
    return cert_kubeconfig(server, tmp, key, issued(kubectl, name))


def kubelet_request(as_who: Kubectl, name: str, node: str) -> ec.EllipticCurvePrivateKey:
    key = new_key()
    ok(as_who("create", "-f", "-", stdin=csr_manifest(name, request_pem(key, f"system:node:{node}", ("system:nodes",)),
                                                      signer=KUBELET, usages=KUBELET_USAGES)))
    return key


def still_pending(kubectl: Kubectl, name: str, seconds: float = 2.0) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if conditions(get_csr(kubectl, name)):
            return False
        time.sleep(0.2)
    return True


def test_a_bootstrappers_request_is_approved_once_rbac_allows_nodeclient(
        server: RunningServer, kubectl: Kubectl, tmp_path: Path) -> None:
    boot = identity(server, kubectl, tmp_path / "boot", "system:bootstrap:abc123", "system:bootstrappers")
    ok(kubectl("create", "clusterrolebinding", "boot-csr", "--clusterrole=system:node-bootstrapper",
               "--group=system:bootstrappers"))
    key = kubelet_request(boot, "node-n1", "n1")
    spec = get_csr(kubectl, "node-n1")["spec"]
    assert spec["username"] == "system:bootstrap:abc123" and "system:bootstrappers" in spec["groups"]
    assert still_pending(kubectl, "node-n1"), "approved before its requester was allowed nodeclient"
    ok(kubectl("create", "clusterrolebinding", "boot-nodeclient",
               "--clusterrole=system:certificates.k8s.io:certificatesigningrequests:nodeclient",
               "--group=system:bootstrappers"))
    cert = issued(kubectl, "node-n1")  # approved on a later look, then signed
    approved = conditions(get_csr(kubectl, "node-n1"))["Approved"]
    assert (approved["status"], approved["reason"], approved["message"]) == ("True", "AutoApproved", BOOTSTRAP)
    assert "Approved,Issued" in ok(kubectl("get", "csr", "node-n1"))
    (tmp_path / "n1").mkdir()
    as_node = cert_kubeconfig(server, tmp_path / "n1", key, cert)
    assert "system:node:n1" in ok(as_node("auth", "whoami"))


def test_a_node_renewing_its_own_certificate_needs_selfnodeclient(
        server: RunningServer, kubectl: Kubectl, tmp_path: Path) -> None:
    node = identity(server, kubectl, tmp_path / "n2", "system:node:n2", "system:nodes")
    ok(kubectl("create", "clusterrolebinding", "nodes-csr", "--clusterrole=system:node-bootstrapper",
               "--group=system:nodes"))
    kubelet_request(node, "renew-n2", "n2")
    assert still_pending(kubectl, "renew-n2")
    ok(kubectl("create", "clusterrolebinding", "nodes-selfnodeclient",
               "--clusterrole=system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
               "--group=system:nodes"))
    cert = issued(kubectl, "renew-n2")
    approved = conditions(get_csr(kubectl, "renew-n2"))["Approved"]
    assert (approved["reason"], approved["message"]) == ("AutoApproved", SELF)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:node:n2"
    # selfnodeclient is for the node's own name only: another node's is not approved
    kubelet_request(node, "n2-for-n3", "n3")
    assert still_pending(kubectl, "n2-for-n3", 3.0)


def test_requests_that_are_not_kubelet_client_ones_are_left_alone(kubectl: Kubectl) -> None:
    """The administrator may have any certificate, so only recognition holds these back."""
    def make(name: str, cn: str, orgs: tuple[str, ...], usages: tuple[str, ...] = KUBELET_USAGES) -> None:
        pem = request_pem(new_key(), cn, orgs)
        ok(kubectl("create", "-f", "-", stdin=csr_manifest(name, pem, signer=KUBELET, usages=usages)))

    make("server-usage", "system:node:n4", ("system:nodes",), ("digital signature", "client auth", "server auth"))
    make("not-nodes", "system:node:n4", ("system:masters",))
    make("not-a-node", "n4", ("system:nodes",))
    make("admin-kubelet", "system:node:n4", ("system:nodes",))  # a proper one: approved (nodeclient)
    for name in ("server-usage", "not-nodes", "not-a-node"):
        assert still_pending(kubectl, name, 1.0), name
    issued(kubectl, "admin-kubelet")
    assert conditions(get_csr(kubectl, "admin-kubelet"))["Approved"]["message"] == BOOTSTRAP
    for name in ("server-usage", "not-nodes", "not-a-node"):
        assert conditions(get_csr(kubectl, name)) == {}, name

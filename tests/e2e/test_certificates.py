"""certificates.k8s.io/v1 CertificateSigningRequests end to end: a real server with the CSR
signing controller, real kubectl, keys and requests made here with ``cryptography``.

A client certificate the cluster issues is a credential: kubectl presenting it (and nothing
else) is the user its subject names."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from tests.conftest import RunningServer, served
from tests.e2e.helpers import Kubectl, wait_until

from bosun.component import ControlPlaneOptions

CLIENT = "kubernetes.io/kube-apiserver-client"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    options = ControlPlaneOptions(controllers=["csrsigning"], scheduler=False)
    yield from served(tmp_path_factory.mktemp("csr-server"), options=options)


@pytest.fixture(scope="module")
def kubectl(server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(server.kubeconfig, str(tmp_path_factory.mktemp("kubectl-home")))


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def request_pem(key: ec.EllipticCurvePrivateKey, cn: str, orgs: tuple[str, ...] = (),
                dns: tuple[str, ...] = (), ips: tuple[str, ...] = ()) -> bytes:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    attrs += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs))
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def csr_manifest(name: str, pem: bytes, signer: str = CLIENT, usages: tuple[str, ...] = ("client auth",),
                 **spec: Any) -> str:
    body = {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": name},
            "spec": {"request": base64.b64encode(pem).decode(), "signerName": signer, "usages": list(usages),
                     **spec}}
    return json.dumps(body)


def ok(p: subprocess.CompletedProcess[str]) -> str:
    assert p.returncode == 0, f"{p.args}: {p.stdout}\n{p.stderr}"
    return p.stdout


def get_csr(kubectl: Kubectl, name: str) -> dict[str, Any]:
    return dict(json.loads(ok(kubectl("get", "csr", name, "-o", "json"))))


def issued(kubectl: Kubectl, name: str, within: float = 30) -> x509.Certificate:
    wait_until(lambda: bool(get_csr(kubectl, name).get("status", {}).get("certificate")), within,
               f"a certificate for {name}")
    pem = base64.b64decode(get_csr(kubectl, name)["status"]["certificate"])
    return x509.load_pem_x509_certificate(pem)


def conditions(csr: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in csr.get("status", {}).get("conditions") or []}


def cert_kubeconfig(server: RunningServer, tmp: Path, key: ec.EllipticCurvePrivateKey,
                    cert: x509.Certificate) -> Kubectl:
    """A kubeconfig whose only credential is the client certificate."""
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": server.url,
                                               "certificate-authority-data": b64(Path(server.ca_path).read_bytes())}}],
        "users": [{"name": "u", "user": {"client-certificate-data": b64(cert.public_bytes(serialization.Encoding.PEM)),
                                         "client-key-data": b64(key_pem)}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
    }
    path = tmp / "cert.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    return Kubectl(str(path), str(home))


def test_approved_client_certificate_is_issued_and_authenticates(
        server: RunningServer, kubectl: Kubectl, tmp_path: Path) -> None:
    key = new_key()
    ok(kubectl("create", "-f", "-", stdin=csr_manifest("jane", request_pem(key, "jane", ("dev-team", "qa")),
                                                      expirationSeconds=3600)))
    created = get_csr(kubectl, "jane")
    assert created["spec"]["username"] == "bosun-admin" and "system:masters" in created["spec"]["groups"]
    assert "certificate" not in created["status"]
    assert "Pending" in ok(kubectl("get", "csr", "jane"))
    ok(kubectl("certificate", "approve", "jane"))
    cert = issued(kubectl, "jane")
    approved = conditions(get_csr(kubectl, "jane"))["Approved"]
    assert approved["status"] == "True" and approved["reason"] == "KubectlApprove"
    assert approved["lastUpdateTime"] and approved["lastTransitionTime"]
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "jane"
    ca = x509.load_pem_x509_certificate(Path(server.ca_path).read_bytes())
    assert cert.issuer == ca.subject
    cert.verify_directly_issued_by(ca)
    life = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(seconds=3600) <= life <= dt.timedelta(seconds=3600 + 310), life
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert "Approved,Issued" in ok(kubectl("get", "csr", "jane"))

    as_jane = cert_kubeconfig(server, tmp_path, key, cert)
    whoami = json.loads(ok(as_jane("auth", "whoami", "-o", "json")))
    info = whoami["status"]["userInfo"]
    assert info["username"] == "jane"
    assert set(info["groups"]) == {"dev-team", "qa", "system:authenticated"}
    refused = as_jane("get", "pods", "-n", "default")
    assert refused.returncode != 0 and 'User "jane" cannot list resource "pods"' in refused.stderr, refused.stderr


def test_certificate_from_another_ca_authenticates_nobody(server: RunningServer, tmp_path: Path) -> None:
    """Only the cluster CA's certificates are credentials: one signed by any other is refused
    in the TLS handshake."""
    other_key = new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mallory")])
    now = dt.datetime.now(dt.UTC)
    key = new_key()
    forged = (x509.CertificateBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "admin"),
                   x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters")]))
        .issuer_name(name).public_key(key.public_key()).serial_number(1)
        .not_valid_before(now - dt.timedelta(minutes=1)).not_valid_after(now + dt.timedelta(hours=1))
        .sign(other_key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "forged.crt", tmp_path / "forged.key"
    cert_file.write_bytes(forged.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    ctx = ssl.create_default_context(cafile=server.ca_path)
    ctx.load_cert_chain(cert_file, key_file)
    with pytest.raises((ssl.SSLError, ConnectionError, urllib.error.URLError)):
        urllib.request.urlopen(f"{server.url}/api/v1/namespaces", context=ctx, timeout=10).read()


def test_deny_and_conditions_that_stay(server: RunningServer, kubectl: Kubectl) -> None:
    key = new_key()
    ok(kubectl("create", "-f", "-", stdin=csr_manifest("denied", request_pem(key, "denied"))))
    ok(kubectl("certificate", "deny", "denied"))
    csr = get_csr(kubectl, "denied")
    assert conditions(csr)["Denied"]["reason"] == "KubectlDeny"
    assert "Denied" in ok(kubectl("get", "csr", "denied"))
    # The approval may not drop the Denied condition, nor hold both.
    csr["status"]["conditions"] = []
    p = kubectl("replace", "--raw", "/apis/certificates.k8s.io/v1/certificatesigningrequests/denied/approval",
                "-f", "-", stdin=json.dumps(csr))
    assert p.returncode != 0 and "updates may not remove the Denied condition" in p.stderr, p.stderr
    csr = get_csr(kubectl, "denied")
    csr["status"]["conditions"].append({"type": "Approved", "status": "True", "reason": "Both"})
    p = kubectl("replace", "--raw", "/apis/certificates.k8s.io/v1/certificatesigningrequests/denied/approval",
                "-f", "-", stdin=json.dumps(csr))
    assert p.returncode != 0 and "Approved and Denied conditions are mutually exclusive" in p.stderr, p.stderr
    time.sleep(1.5)  # the signer has had its chance
    assert "certificate" not in get_csr(kubectl, "denied")["status"]


def test_status_writes_cannot_approve(server: RunningServer, kubectl: Kubectl) -> None:
    """The status subresource is the signer's: an Approved condition sent there is dropped."""
    key = new_key()
    ok(kubectl("create", "-f", "-", stdin=csr_manifest("sneaky", request_pem(key, "sneaky"),
                                                      signer="example.com/private")))
    csr = get_csr(kubectl, "sneaky")
    csr["status"] = {"conditions": [{"type": "Approved", "status": "True", "reason": "Self"}]}
    ok(kubectl("replace", "--raw", "/apis/certificates.k8s.io/v1/certificatesigningrequests/sneaky/status",
               "-f", "-", stdin=json.dumps(csr)))
    assert "Approved" not in conditions(get_csr(kubectl, "sneaky"))


@pytest.mark.parametrize(("spec", "field", "message"), [
    ({"request": base64.b64encode(b"not a request").decode()}, "spec.request",
     "PEM block type must be CERTIFICATE REQUEST"),
    ({"signerName": "signer"}, "spec.signerName", "must be a fully qualified domain and path"),
    ({"signerName": ""}, "spec.signerName", "Required value"),
    ({"usages": ["client auth", "teleport"]}, "spec.usages[1]", 'Unsupported value: "teleport"'),
    ({"usages": []}, "spec.usages", "usages must be provided"),
    ({"expirationSeconds": 599}, "spec.expirationSeconds", "may not specify a duration less than 600 seconds"),
])
def test_invalid_requests_are_422_naming_the_field(kubectl: Kubectl, spec: dict[str, Any], field: str,
                                                   message: str) -> None:
    body = json.loads(csr_manifest("bad", request_pem(new_key(), "bad")))
    body["spec"].update(spec)
    p = kubectl("create", "-f", "-", stdin=json.dumps(body))
    assert p.returncode != 0
    assert "is invalid" in p.stderr and field in p.stderr and message in p.stderr, p.stderr


def test_requester_is_recorded_not_taken_from_the_body(server: RunningServer, kubectl: Kubectl,
                                                        tmp_path: Path) -> None:
    """spec.username/groups are who asked, even when the body claims to be someone else."""
    key = new_key()
    ok(kubectl("create", "-f", "-", stdin=csr_manifest("carol", request_pem(key, "carol", ("devs",)))))
    ok(kubectl("certificate", "approve", "carol"))
    as_carol = cert_kubeconfig(server, tmp_path, key, issued(kubectl, "carol"))
    ok(kubectl("create", "clusterrole", "csr-maker", "--verb=create,get",
               "--resource=certificatesigningrequests.certificates.k8s.io"))
    ok(kubectl("create", "clusterrolebinding", "carol-csr", "--clusterrole=csr-maker", "--user=carol"))
    forged = csr_manifest("forged", request_pem(new_key(), "root"), username="bosun-admin",
                          groups=["system:masters"], uid="0", extra={"scopes": ["all"]})
    wait_until(lambda: as_carol("create", "-f", "-", stdin=forged).returncode == 0, 15, "carol may create CSRs")
    spec = get_csr(kubectl, "forged")["spec"]
    assert spec["username"] == "carol"
    assert set(spec["groups"]) == {"devs", "system:authenticated"}
    assert "uid" not in spec and "extra" not in spec
    # The spec is fixed once created: an update keeps it.
    csr = get_csr(kubectl, "forged")
    csr["spec"]["username"] = "someone-else"
    csr["metadata"]["labels"] = {"seen": "yes"}
    ok(kubectl("replace", "-f", "-", stdin=json.dumps(csr)))
    after = get_csr(kubectl, "forged")
    assert after["spec"]["username"] == "carol" and after["metadata"]["labels"] == {"seen": "yes"}


def test_signer_refuses_what_its_signer_may_not_sign(kubectl: Kubectl) -> None:
    ok(kubectl("create", "-f", "-", stdin=csr_manifest("server-as-client", request_pem(new_key(), "web"),
                                                      usages=("server auth",))))
    ok(kubectl("certificate", "approve", "server-as-client"))
    wait_until(lambda: "Failed" in conditions(get_csr(kubectl, "server-as-client")), 30, "a Failed condition")
    csr = get_csr(kubectl, "server-as-client")
    failed = conditions(csr)["Failed"]
    assert failed["reason"] == "SignerValidationFailure"
    assert failed["message"] == "invalid usage for client certificate: server auth"
    assert "certificate" not in csr["status"]
    assert "Approved,Failed" in ok(kubectl("get", "csr", "server-as-client"))


def test_kubelet_certificates_and_unknown_signers(kubectl: Kubectl) -> None:
    ok(kubectl("create", "-f", "-", stdin=csr_manifest("elsewhere", request_pem(new_key(), "x"),
                                                      signer="example.com/elsewhere")))
    ok(kubectl("certificate", "approve", "elsewhere"))
    serving = request_pem(new_key(), "system:node:n1", ("system:nodes",), dns=("n1",), ips=("10.0.0.7",))
    ok(kubectl("create", "-f", "-", stdin=csr_manifest(
        "n1-serving", serving, signer="kubernetes.io/kubelet-serving",
        usages=("digital signature", "key encipherment", "server auth"), expirationSeconds=600)))
    ok(kubectl("create", "-f", "-", stdin=csr_manifest(
        "n1-client", request_pem(new_key(), "system:node:n1", ("system:nodes",)),
        signer="kubernetes.io/kube-apiserver-client-kubelet", usages=("digital signature", "client auth"))))
    ok(kubectl("create", "-f", "-", stdin=csr_manifest(
        "not-a-node", request_pem(new_key(), "n2", ("system:nodes",)),
        signer="kubernetes.io/kube-apiserver-client-kubelet", usages=("client auth",))))
    ok(kubectl("certificate", "approve", "n1-serving", "n1-client", "not-a-node"))
    cert = issued(kubectl, "n1-serving")
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["n1"]
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.0.0.7")]
    life = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(seconds=600) <= life <= dt.timedelta(seconds=910), life
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    client = issued(kubectl, "n1-client")
    assert client.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:nodes"
    wait_until(lambda: "Failed" in conditions(get_csr(kubectl, "not-a-node")), 30, "a Failed condition")
    assert conditions(get_csr(kubectl, "not-a-node"))["Failed"]["message"] == \
        "subject common name does not begin with system:node:"
    # Issued after "elsewhere" was approved; a signer nobody runs leaves it as it was.
    elsewhere = get_csr(kubectl, "elsewhere")
    assert set(conditions(elsewhere)) == {"Approved"} and "certificate" not in elsewhere["status"]


def test_approving_and_signing_need_the_signer_verbs(server: RunningServer, kubectl: Kubectl,
                                                     tmp_path: Path) -> None:
    """Updating the approval is not enough: the approver needs ``approve`` on the request's
    signer (by name or by domain), as upstream's CertificateApproval admission asks."""
    key = new_key()
    ok(kubectl("create", "-f", "-", stdin=csr_manifest("dave", request_pem(key, "dave"))))
    ok(kubectl("certificate", "approve", "dave"))
    as_dave = cert_kubeconfig(server, tmp_path, key, issued(kubectl, "dave"))
    ok(kubectl("create", "clusterrole", "csr-approver", "--verb=get,list,watch,update",
               "--resource=certificatesigningrequests.certificates.k8s.io,"
               "certificatesigningrequests.certificates.k8s.io/approval,"
               "certificatesigningrequests.certificates.k8s.io/status"))
    ok(kubectl("create", "clusterrolebinding", "dave-approver", "--clusterrole=csr-approver", "--user=dave"))
    for name in ("for-dave", "for-dave-2"):
        ok(kubectl("create", "-f", "-", stdin=csr_manifest(name, request_pem(new_key(), name),
                                                          signer="example.com/team-a")))
    wait_until(lambda: as_dave("get", "csr", "for-dave").returncode == 0, 15, "dave may read CSRs")
    p = as_dave("certificate", "approve", "for-dave")
    assert p.returncode != 0
    assert ('certificatesigningrequests.certificates.k8s.io "for-dave" is forbidden: user not permitted to '
            'approve requests with signerName "example.com/team-a"') in p.stderr, p.stderr
    assert "Approved" not in conditions(get_csr(kubectl, "for-dave"))
    # signers are no served resource (kubectl create clusterrole refuses them): a manifest, as upstream's docs.
    ok(kubectl("create", "-f", "-", stdin=json.dumps({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "team-a-approver"},
        "rules": [{"apiGroups": ["certificates.k8s.io"], "resources": ["signers"], "verbs": ["approve"],
                   "resourceNames": ["example.com/*"]}]})))
    ok(kubectl("create", "clusterrolebinding", "dave-team-a", "--clusterrole=team-a-approver", "--user=dave"))
    wait_until(lambda: as_dave("certificate", "approve", "for-dave").returncode == 0, 15, "dave may approve")
    assert conditions(get_csr(kubectl, "for-dave"))["Approved"]["status"] == "True"
    # Issuing is the signer's: a status write with a certificate needs "sign".
    csr = get_csr(kubectl, "for-dave")
    csr["status"]["certificate"] = base64.b64encode(Path(server.ca_path).read_bytes()).decode()
    p = as_dave("replace", "--raw", "/apis/certificates.k8s.io/v1/certificatesigningrequests/for-dave/status",
                "-f", "-", stdin=json.dumps(csr))
    assert p.returncode != 0 and 'not permitted to sign requests with signerName "example.com/team-a"' in p.stderr
    assert "certificate" not in get_csr(kubectl, "for-dave")["status"]
    ok(as_dave("certificate", "deny", "for-dave-2"))
    assert "Denied" in conditions(get_csr(kubectl, "for-dave-2"))
    # The domain grant covers example.com only; upstream's approver role, bound, covers its signer.
    ok(kubectl("create", "-f", "-", stdin=csr_manifest("for-dave-3", request_pem(new_key(), "erin"))))
    assert as_dave("certificate", "approve", "for-dave-3").returncode != 0
    ok(kubectl("create", "clusterrolebinding", "dave-client-approver", "--user=dave",
               "--clusterrole=system:certificates.k8s.io:kube-apiserver-client-approver"))
    wait_until(lambda: as_dave("certificate", "approve", "for-dave-3").returncode == 0, 15, "dave may approve")
    assert issued(kubectl, "for-dave-3").subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "erin"


def test_no_masters_certificates_from_the_client_signer(kubectl: Kubectl) -> None:
    pem = request_pem(new_key(), "root", ("system:masters",))
    p = kubectl("create", "-f", "-", stdin=csr_manifest("masters", pem))
    assert p.returncode != 0
    assert ("use of kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed"
            in p.stderr), p.stderr

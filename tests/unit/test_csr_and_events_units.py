"""The pure parts of CertificateSigningRequests and events.k8s.io Events: the events field
mapping, the request's validation, what each built-in signer accepts and what it issues."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bosun.api.conversion.events import EVENTS_V1
from bosun.api.validation.certificates import validate_csr, validate_signer_name
from bosun.api.validation.fields import Checker
from bosun.security.signer import SIGNERS, ClusterCA, Refused
from bosun.security.x509auth import user_of_certificate

FULL_V1 = {
    "apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e", "namespace": "ns"},
    "eventTime": "2024-01-01T00:00:00.000000Z", "series": {"count": 2, "lastObservedTime": "2024-01-01T00:01:00Z"},
    "reportingController": "example.com/c", "reportingInstance": "c-0", "action": "Act", "reason": "Why",
    "regarding": {"kind": "Pod", "name": "p"}, "related": {"kind": "Node", "name": "n"}, "note": "text",
    "type": "Warning", "deprecatedSource": {"component": "x", "host": "h"},
    "deprecatedFirstTimestamp": "2024-01-01T00:00:00Z", "deprecatedLastTimestamp": "2024-01-01T00:02:00Z",
    "deprecatedCount": 5,
}


def test_events_v1_maps_every_field_to_core_and_back() -> None:
    core = EVENTS_V1.to_storage(FULL_V1)
    assert core["apiVersion"] == "v1"
    assert (core["message"], core["reportingComponent"], core["count"]) == ("text", "example.com/c", 5)
    assert core["involvedObject"] == {"kind": "Pod", "name": "p"} and core["source"] == {"component": "x", "host": "h"}
    assert (core["firstTimestamp"], core["lastTimestamp"]) == ("2024-01-01T00:00:00Z", "2024-01-01T00:02:00Z")
    assert not set(core) & {"note", "regarding", "reportingController", "deprecatedCount", "deprecatedSource"}
    assert EVENTS_V1.from_storage(core) == FULL_V1
    # The deprecated fields are for reading old events: a new one may not set them.
    assert {e.field for e in EVENTS_V1.validate(FULL_V1)} == {"count", "firstTimestamp", "lastTimestamp", "source"}
    fresh = {k: v for k, v in FULL_V1.items() if not k.startswith("deprecated")}
    assert EVENTS_V1.validate(fresh) == []


def test_events_v1_create_rules() -> None:
    fields = {e.field for e in EVENTS_V1.validate({"note": "x" * 1025, "type": "Info"})}
    assert fields == {"eventTime", "type", "reportingController", "reportingInstance", "action", "reason", "message"}
    fresh = {k: v for k, v in FULL_V1.items() if not k.startswith("deprecated")}
    bad = [e.detail() for e in EVENTS_V1.validate(dict(fresh, reportingController="a/b/c"))]
    assert len(bad) == 1 and bad[0].startswith('reportingController: Invalid value: "a/b/c"'), bad


def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def request(cn: str, orgs: tuple[str, ...] = (), dns: tuple[str, ...] = ()) -> x509.CertificateSigningRequest:
    names = [x509.NameAttribute(NameOID.COMMON_NAME, cn), *(x509.NameAttribute(NameOID.ORGANIZATION_NAME, o)
                                                             for o in orgs)]
    b = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(names))
    if dns:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False)
    return b.sign(key(), hashes.SHA256())


def csr_obj(**spec: Any) -> dict[str, Any]:
    pem = request("u").public_bytes(Encoding.PEM)
    return {"metadata": {"name": "x"}, "spec": {"request": base64.b64encode(pem).decode(),
                                                "signerName": "example.com/s", "usages": ["client auth"], **spec}}


def errors_of(obj: dict[str, Any]) -> list[str]:
    c = Checker()
    validate_csr(c, obj)
    return [e.detail() for e in c.errors]


def test_csr_validation_messages() -> None:
    assert errors_of(csr_obj()) == []
    tampered = csr_obj()
    pem = bytearray(base64.b64decode(tampered["spec"]["request"]))
    pem[100] = ord("A") if pem[100] != ord("A") else ord("B")
    tampered["spec"]["request"] = base64.b64encode(bytes(pem)).decode()
    assert any(m.startswith("spec.request: Invalid value") for m in errors_of(tampered))
    assert errors_of(csr_obj(expirationSeconds=599)) == [
        "spec.expirationSeconds: Invalid value: 599: may not specify a duration less than 600 seconds (10 minutes)"]
    assert errors_of(csr_obj(usages=["client auth", "client auth"])) == [
        'spec.usages[1]: Duplicate value: "client auth"']
    assert errors_of(csr_obj(signerName="kubernetes.io/legacy-unknown")) == [
        'spec.signerName: Invalid value: "kubernetes.io/legacy-unknown": the legacy signerName is not allowed '
        "via this API version"]
    denied_and_approved = csr_obj()
    denied_and_approved["status"] = {"conditions": [{"type": "Approved", "status": "True"},
                                                    {"type": "Denied", "status": "True"}]}
    assert errors_of(denied_and_approved) == [
        'status.conditions: Invalid value: "": Approved and Denied conditions are mutually exclusive']


@pytest.mark.parametrize(("name", "message"), [
    ("example.com/ok", None),
    ("example/x", "should be a domain with at least two segments separated by dots"),
    ("Example.com/x", 'validating label "Example"'),
    ("example.com/a/b", "must be a fully qualified domain and path of the form 'example.com/signer-name'"),
])
def test_signer_names(name: str, message: str | None) -> None:
    errs = [e.detail() for e in validate_signer_name("spec.signerName", name)]
    assert (errs == []) if message is None else any(message in e for e in errs), errs


@pytest.mark.parametrize(("signer", "req", "usages", "refusal"), [
    ("kubernetes.io/kube-apiserver-client", request("a"), ["digital signature", "client auth"], None),
    ("kubernetes.io/kube-apiserver-client", request("a"), ["digital signature"],
     "missing required usage for client certificate: client auth"),
    ("kubernetes.io/kube-apiserver-client-kubelet", request("system:node:n", ("system:nodes",)), ["client auth"],
     None),
    ("kubernetes.io/kube-apiserver-client-kubelet", request("system:node:n", ("system:nodes",), ("n",)),
     ["client auth"], "DNS subjectAltNames are not allowed"),
    ("kubernetes.io/kube-apiserver-client-kubelet", request("system:node:n", ("devs",)), ["client auth"],
     "subject organization is not system:nodes"),
    ("kubernetes.io/kubelet-serving", request("system:node:n", ("system:nodes",)), ["server auth"],
     "DNS or IP subjectAltName is required"),
    ("kubernetes.io/kubelet-serving", request("system:node:n", ("system:nodes",), ("n",)),
     ["server auth", "client auth"], "invalid usage for kubelet serving certificate: client auth"),
])
def test_what_each_signer_accepts(signer: str, req: x509.CertificateSigningRequest, usages: list[str],
                                  refusal: str | None) -> None:
    if refusal is None:
        SIGNERS[signer](req, usages)
    else:
        with pytest.raises(Refused, match=refusal):
            SIGNERS[signer](req, usages)


def make_ca(days: float) -> ClusterCA:
    k = key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-ca")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(k.public_key())
            .serial_number(1).not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(k.public_key()), critical=False)
            .sign(k, hashes.SHA256()))
    return ClusterCA(cert, k)


def test_issued_certificates_honour_expiration_and_the_ca_end() -> None:
    ca, now = make_ca(30), dt.datetime.now(dt.UTC).replace(microsecond=0)
    cert = x509.load_pem_x509_certificate(ca.sign(request("a", ("g",)), ["client auth"], 3600, now))
    assert cert.not_valid_after_utc == now + dt.timedelta(seconds=3600)
    assert cert.not_valid_before_utc == now - dt.timedelta(minutes=5)
    cert.verify_directly_issued_by(ca.cert)
    user = user_of_certificate(cert.public_bytes(Encoding.DER))
    assert user is not None and user.name == "a" and set(user.groups) == {"g", "system:authenticated"}
    # A default (a year) and a long request both stop where the CA does.
    for seconds in (None, 10 * 365 * 86400):
        capped = x509.load_pem_x509_certificate(ca.sign(request("a"), ["client auth"], seconds, now))
        assert capped.not_valid_after_utc == ca.cert.not_valid_after_utc


def test_only_client_auth_certificates_authenticate() -> None:
    ca = make_ca(30)
    server_only = x509.load_pem_x509_certificate(ca.sign(request("web"), ["server auth"], 3600))
    assert user_of_certificate(server_only.public_bytes(Encoding.DER)) is None
    eku = server_only.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]

"""Issuing certificates for approved CertificateSigningRequests with the cluster CA
(kube-controller-manager's csrsigning controller, its signing half).

Which requests each built-in signer may sign is upstream's rule set
(``pkg/apis/certificates/helpers.go``, ``pkg/controller/certificates/signer``): a client
certificate for the API server authenticates whoever its subject names, so the usages are
limited to client authentication; kubelet certificates must name a node
(``system:node:<name>``, organization ``system:nodes``). A request a signer refuses gets a
``Failed`` condition saying why; requests for other signers are left to their own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CLIENT = "kubernetes.io/kube-apiserver-client"
KUBELET_CLIENT = "kubernetes.io/kube-apiserver-client-kubelet"
KUBELET_SERVING = "kubernetes.io/kubelet-serving"
NODES_GROUP = "system:nodes"
NODE_PREFIX = "system:node:"
# kube-controller-manager's --cluster-signing-duration default.
DEFAULT_DURATION = dt.timedelta(days=365)
# Certificates start five minutes in the past, as upstream's (clocks a little behind).
BACKDATE = dt.timedelta(minutes=5)

_EXT_USAGES = {
    "server auth": ExtendedKeyUsageOID.SERVER_AUTH, "client auth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "code signing": ExtendedKeyUsageOID.CODE_SIGNING, "email protection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "timestamping": ExtendedKeyUsageOID.TIME_STAMPING, "ocsp signing": ExtendedKeyUsageOID.OCSP_SIGNING,
    "any": ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
}
_KEY_USAGES = {
    "digital signature": "digital_signature", "signing": "digital_signature",
    "content commitment": "content_commitment", "key encipherment": "key_encipherment",
    "key agreement": "key_agreement", "data encipherment": "data_encipherment", "cert sign": "key_cert_sign",
    "crl sign": "crl_sign", "encipher only": "encipher_only", "decipher only": "decipher_only",
}


class Refused(Exception):
    """The signer will not sign this request (the message is the Failed condition's)."""


def _subject(csr: x509.CertificateSigningRequest, oid: x509.ObjectIdentifier) -> list[str]:
    return [str(a.value) for a in csr.subject.get_attributes_for_oid(oid)]


def _sans(csr: x509.CertificateSigningRequest) -> x509.SubjectAlternativeName | None:
    try:
        return csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None


def _check_usages(usages: list[str], optional: set[str], needed: str, what: str) -> None:
    for u in usages:
        if u not in optional and u != needed:
            raise Refused(f"invalid usage for {what} certificate: {u}")
    if needed not in usages:
        raise Refused(f"missing required usage for {what} certificate: {needed}")


def _check_node_subject(csr: x509.CertificateSigningRequest) -> None:
    if _subject(csr, NameOID.ORGANIZATION_NAME) != [NODES_GROUP]:
        raise Refused("subject organization is not system:nodes")
    names = _subject(csr, NameOID.COMMON_NAME)
    if not names or not names[0].startswith(NODE_PREFIX):
        raise Refused("subject common name does not begin with system:node:")


def check_client(csr: x509.CertificateSigningRequest, usages: list[str]) -> None:
    _check_usages(usages, {"digital signature", "key encipherment"}, "client auth", "client")


def check_kubelet_client(csr: x509.CertificateSigningRequest, usages: list[str]) -> None:
    _check_node_subject(csr)
    sans = _sans(csr)
    if sans is not None:
        for kind, label in ((x509.DNSName, "DNS"), (x509.RFC822Name, "Email"), (x509.IPAddress, "IP"),
                            (x509.UniformResourceIdentifier, "URI")):
            if sans.get_values_for_type(kind):  # type: ignore[type-var]
                raise Refused(f"{label} subjectAltNames are not allowed")
    _check_usages(usages, {"digital signature", "key encipherment"}, "client auth", "kubelet client")


def check_kubelet_serving(csr: x509.CertificateSigningRequest, usages: list[str]) -> None:
    _check_node_subject(csr)
    sans = _sans(csr)
    if sans is None or not (sans.get_values_for_type(x509.DNSName) or sans.get_values_for_type(x509.IPAddress)):
        raise Refused("DNS or IP subjectAltName is required")
    for kind, label in ((x509.RFC822Name, "Email"), (x509.UniformResourceIdentifier, "URI")):
        if sans.get_values_for_type(kind):  # type: ignore[type-var]
            raise Refused(f"{label} subjectAltNames are not allowed")
    _check_usages(usages, {"digital signature", "key encipherment"}, "server auth", "kubelet serving")


def _key_id(cert: x509.Certificate) -> x509.SubjectKeyIdentifier | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return None


# The signers this cluster's CA acts for, and what each accepts.
SIGNERS: dict[str, Callable[[x509.CertificateSigningRequest, list[str]], None]] = {
    CLIENT: check_client, KUBELET_CLIENT: check_kubelet_client, KUBELET_SERVING: check_kubelet_serving,
}


@dataclass(frozen=True)
class ClusterCA:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

    @classmethod
    def load(cls, cert_path: Path, key_path: Path) -> ClusterCA:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
            raise ValueError(f"{key_path}: expected an EC or RSA private key")
        return cls(cert, key)

    def sign(self, csr: x509.CertificateSigningRequest, usages: list[str], expiration_seconds: int | None,
             now: dt.datetime | None = None) -> bytes:
        """The PEM certificate for ``csr``: its subject, key and names, the usages asked for,
        valid for ``expiration_seconds`` (the cluster's default when None) but never past
        the CA's own end."""
        now = now or dt.datetime.now(dt.UTC)
        life = dt.timedelta(seconds=expiration_seconds) if expiration_seconds else DEFAULT_DURATION
        life = min(life, DEFAULT_DURATION)
        not_after = min(now + life, self.cert.not_valid_after_utc)
        flags = {v: False for v in _KEY_USAGES.values()}
        for u in usages:
            if u in _KEY_USAGES:
                flags[_KEY_USAGES[u]] = True
        if not flags["key_agreement"]:  # X.509 gives these two a meaning only with key agreement
            flags["encipher_only"] = flags["decipher_only"] = False
        builder = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(self.cert.subject)
            .public_key(csr.public_key())  # type: ignore[arg-type]
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        if any(flags.values()):  # none asked for: no extension (an empty one is invalid), as upstream
            builder = builder.add_extension(x509.KeyUsage(**flags), critical=True)
        ext = [_EXT_USAGES[u] for u in usages if u in _EXT_USAGES]
        if ext:
            builder = builder.add_extension(x509.ExtendedKeyUsage(ext), critical=False)
        sans = _sans(csr)
        if sans is not None:
            builder = builder.add_extension(sans, critical=False)
        ski = _key_id(self.cert)
        if ski is not None:
            builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                                            critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM)

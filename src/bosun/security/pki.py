"""The cluster CA and the API server's serving certificate.

Clients (kubectl, the Python client, agents) trust only the cluster CA that ships in the
kubeconfig, so the CA must survive restarts while the serving certificate may be re-issued
whenever the server is reached under a new name or the certificate is about to expire.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bosun.security.files import write_atomic

CA_VALIDITY = dt.timedelta(days=3650)
SERVING_VALIDITY = dt.timedelta(days=365)
RENEW_BEFORE = dt.timedelta(days=30)

# Names every in-cluster client may use to reach the API server, plus loopback.
DEFAULT_HOSTS: tuple[str, ...] = (
    "localhost",
    "127.0.0.1",
    "::1",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


@dataclass(frozen=True, slots=True)
class Pki:
    ca_cert_pem: bytes
    ca_cert_path: Path
    ca_key_path: Path
    server_cert_path: Path
    server_key_path: Path


def pki_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "pki"


def ensure_pki(data_dir: Path, hosts: list[str]) -> Pki:
    """Create the CA and serving certificate on first start; reuse or renew them later."""
    d = pki_dir(data_dir)
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    ca_cert_path, ca_key_path = d / "ca.crt", d / "ca.key"
    srv_cert_path, srv_key_path = d / "apiserver.crt", d / "apiserver.key"

    if ca_cert_path.exists() and ca_key_path.exists():
        ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
        ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
        if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{ca_key_path}: expected an EC private key")
    else:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = _make_ca(ca_key)
        write_atomic(ca_key_path, _key_pem(ca_key), 0o600)
        write_atomic(ca_cert_path, ca_cert.public_bytes(serialization.Encoding.PEM), 0o644)

    wanted = _dedupe([*hosts, *DEFAULT_HOSTS])
    if _needs_serving_cert(srv_cert_path, srv_key_path, ca_cert, wanted):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _make_serving(key, ca_key, ca_cert, wanted)
        write_atomic(srv_key_path, _key_pem(key), 0o600)
        write_atomic(srv_cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)

    return Pki(
        ca_cert_pem=ca_cert.public_bytes(serialization.Encoding.PEM),
        ca_cert_path=ca_cert_path,
        ca_key_path=ca_key_path,
        server_cert_path=srv_cert_path,
        server_key_path=srv_key_path,
    )


def _dedupe(hosts: list[str]) -> list[str]:
    out: list[str] = []
    for h in hosts:
        h = h.strip().strip("[]")
        if h and h not in out:
            out.append(h)
    return out


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _builder(
    key: ec.EllipticCurvePrivateKey, subject: x509.Name, issuer: x509.Name, validity: dt.timedelta,
    *, ca: bool,
) -> x509.CertificateBuilder:
    """What the CA and the serving certificate have in common: valid from five minutes ago
    (a client whose clock is a little behind still accepts it), signing rights only for the CA."""
    now = _now()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
    )


def _make_ca(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bosun-ca")])
    return (
        _builder(key, name, name, CA_VALIDITY, ca=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _san_entries(hosts: list[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for h in hosts:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            out.append(x509.DNSName(h))
    return out


def _make_serving(
    key: ec.EllipticCurvePrivateKey,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    hosts: list[str],
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bosun-apiserver")])
    return (
        _builder(key, subject, ca_cert.subject, SERVING_VALIDITY, ca=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(_san_entries(hosts)), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )


def _needs_serving_cert(
    cert_path: Path, key_path: Path, ca_cert: x509.Certificate, hosts: list[str]
) -> bool:
    """True when the serving cert is absent, from another CA, expiring, or lacks a host."""
    if not cert_path.exists() or not key_path.exists():
        return True
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except ValueError:
        return True
    if cert.issuer != ca_cert.subject:
        return True
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (InvalidSignature, ValueError, TypeError):
        return True
    if key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        return True
    if cert.not_valid_after_utc - _now() < RENEW_BEFORE:
        return True
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return True
    have_dns = {n.lower() for n in san.get_values_for_type(x509.DNSName)}
    have_ip = set(san.get_values_for_type(x509.IPAddress))
    for h in hosts:
        try:
            if ipaddress.ip_address(h) not in have_ip:
                return True
        except ValueError:
            if h.lower() not in have_dns:
                return True
    return False


def make_ca(common_name: str) -> tuple[bytes, bytes]:
    """A new CA of its own (cert PEM, key PEM), for a trust domain kept apart from the
    cluster CA's (the embedded etcd's: a client certificate the cluster CA signs for a user
    must not open the store)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (_builder(key, name, name, CA_VALIDITY, ca=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def issue_leaf(ca_cert_pem: bytes, ca_key_pem: bytes, common_name: str, hosts: list[str], *,
               server: bool, client: bool) -> tuple[bytes, bytes]:
    """A certificate (PEM) and its new key (PEM) signed by the CA given, for ``hosts``."""
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("expected an EC private key for the CA")
    key = ec.generate_private_key(ec.SECP256R1())
    usages = [*([ExtendedKeyUsageOID.SERVER_AUTH] if server else []),
              *([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])]
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (_builder(key, subject, ca_cert.subject, SERVING_VALIDITY, ca=False)
               .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   ca_cert.public_key()), critical=False))  # type: ignore[arg-type]
    if hosts:
        builder = builder.add_extension(x509.SubjectAlternativeName(_san_entries(_dedupe(hosts))), critical=False)
    return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM), _key_pem(key)

"""The cluster CA and serving certificate, checked the way clients will use them."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import stat
import subprocess
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from bosun.security.pki import ensure_pki


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def _sans(path: Path) -> tuple[set[str], set[str]]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(san.get_values_for_type(x509.DNSName)), {
        str(ip) for ip in san.get_values_for_type(x509.IPAddress)
    }


def _handshake(pki_server_cert: Path, pki_server_key: Path, ca: Path, hostname: str) -> str:
    """TLS handshake over loopback with a client that trusts only the CA; returns peer CN."""
    srv_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    srv_ctx.load_cert_chain(pki_server_cert, pki_server_key)
    cli_ctx = ssl.create_default_context(cafile=str(ca))  # with cafile, system roots are not loaded
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            with srv_ctx.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(b"ok")
        except (OSError, ssl.SSLError) as e:  # the client's refusal shows up here too
            errors.append(e)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, cli_ctx.wrap_socket(
            raw, server_hostname=hostname
        ) as tls:
            assert tls.recv(2) == b"ok"
            der = tls.getpeercert(binary_form=True)
            assert der is not None
            cn = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(
                x509.oid.NameOID.COMMON_NAME
            )
            return str(cn[0].value)
    finally:
        t.join(5)
        listener.close()


def test_first_start_creates_ca_and_serving_cert(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path, ["10.1.2.3", "manager-1.example"])
    assert pki.ca_cert_path.parent == tmp_path / "pki"
    for p in (pki.ca_key_path, pki.server_key_path):
        assert _mode(p) == 0o600
    ca = x509.load_pem_x509_certificate(pki.ca_cert_pem)
    assert ca.subject.rfc4514_string() == "CN=bosun-ca"
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.not_valid_after_utc - ca.not_valid_before_utc > dt.timedelta(days=3640)
    dns, ips = _sans(pki.server_cert_path)
    assert {"manager-1.example", "localhost", "kubernetes", "kubernetes.default",
            "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"} <= dns
    assert {"10.1.2.3", "127.0.0.1", "::1"} <= ips
    srv = x509.load_pem_x509_certificate(pki.server_cert_path.read_bytes())
    eku = srv.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.SERVER_AUTH in eku
    srv.verify_directly_issued_by(ca)


@pytest.mark.parametrize("hostname", ["127.0.0.1", "localhost"])
def test_python_ssl_accepts_chain(tmp_path: Path, hostname: str) -> None:
    pki = ensure_pki(tmp_path, [])
    assert _handshake(pki.server_cert_path, pki.server_key_path, pki.ca_cert_path, hostname) == (
        "bosun-apiserver"
    )


def test_chain_refused_for_unknown_host(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path, [])
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(pki.server_cert_path, pki.server_key_path, pki.ca_cert_path, "evil.example")


def test_openssl_verifies_chain(tmp_path: Path) -> None:
    """An independent verifier (the one kubectl's Go TLS mirrors) accepts it for serverAuth."""
    pki = ensure_pki(tmp_path, ["node-a"])
    out = subprocess.run(
        ["openssl", "verify", "-purpose", "sslserver", "-CAfile", str(pki.ca_cert_path),
         str(pki.server_cert_path)],
        capture_output=True, text=True, check=False,
    )
    assert out.returncode == 0, out.stderr + out.stdout


def test_restart_reuses_everything(tmp_path: Path) -> None:
    first = ensure_pki(tmp_path, ["10.0.0.5"])
    srv_before = first.server_cert_path.read_bytes()
    key_before = first.ca_key_path.read_bytes()
    second = ensure_pki(tmp_path, ["10.0.0.5"])
    assert second.ca_cert_pem == first.ca_cert_pem
    assert second.ca_key_path.read_bytes() == key_before
    assert second.server_cert_path.read_bytes() == srv_before


def test_new_host_reissues_serving_cert_with_same_ca(tmp_path: Path) -> None:
    first = ensure_pki(tmp_path, ["10.0.0.5"])
    srv_before = first.server_cert_path.read_bytes()
    second = ensure_pki(tmp_path, ["10.0.0.5", "new-name.internal"])
    assert second.ca_cert_pem == first.ca_cert_pem
    assert second.server_cert_path.read_bytes() != srv_before
    dns, ips = _sans(second.server_cert_path)
    assert "new-name.internal" in dns and "10.0.0.5" in ips
    assert _mode(second.server_key_path) == 0o600


def test_expiring_serving_cert_is_renewed(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path, [])
    ca_key = serialization.load_pem_private_key(pki.ca_key_path.read_bytes(), password=None)
    old = x509.load_pem_x509_certificate(pki.server_cert_path.read_bytes())
    now = dt.datetime.now(dt.UTC)
    # Same key, same SANs, but only 10 days left: must be re-issued.
    short = (
        x509.CertificateBuilder()
        .subject_name(old.subject)
        .issuer_name(old.issuer)
        .public_key(old.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=10))
        .add_extension(old.extensions.get_extension_for_class(x509.SubjectAlternativeName).value,
                       critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    pki.server_cert_path.write_bytes(short.public_bytes(serialization.Encoding.PEM))
    ensure_pki(tmp_path, [])
    renewed = x509.load_pem_x509_certificate(pki.server_cert_path.read_bytes())
    assert renewed.not_valid_after_utc - now > dt.timedelta(days=300)


def test_missing_serving_cert_is_recreated(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path, [])
    pki.server_cert_path.unlink()
    again = ensure_pki(tmp_path, [])
    assert again.server_cert_path.exists()
    assert again.ca_cert_pem == pki.ca_cert_pem

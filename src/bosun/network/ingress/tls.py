"""TLS certificates for nginx: from ``kubernetes.io/tls`` Secrets to PEM files, checked first.

nginx refuses a whole configuration for one bad certificate, so each Secret is checked here
(both keys present, the chain parses, the key is the certificate's) before it is written;
a broken update keeps the last good certificate of that Secret and says why (an event on
the Ingress). Files are named by their content's hash: the running configuration's files
stay in place while a new one is tested, and unused ones are removed after a reload.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import os
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bosun.network.ingress.model import SECRET_NOT_FOUND, Cert

Obj = dict[str, Any]
DEFAULT_CERT = "default.pem"


def _field(secret: Obj, key: str) -> bytes:
    raw = (secret.get("data") or {}).get(key)
    if not raw:
        raise ValueError(f"has no {key}")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{key} is not base64") from None


def check_pair(secret: Obj) -> bytes:
    """The PEM nginx loads (key, then chain) of a TLS Secret; ValueError says what is wrong."""
    crt, key = _field(secret, "tls.crt"), _field(secret, "tls.key")
    try:
        chain = x509.load_pem_x509_certificates(crt)
    except ValueError:
        raise ValueError("tls.crt is not a PEM certificate") from None
    try:
        private = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError):
        raise ValueError("tls.key is not an unencrypted PEM private key") from None
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if (private.public_key().public_bytes(serialization.Encoding.PEM, public)
            != chain[0].public_key().public_bytes(serialization.Encoding.PEM, public)):
        raise ValueError("tls.key does not match the certificate in tls.crt")
    return key.rstrip(b"\n") + b"\n" + crt


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


class CertStore:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self._good: dict[tuple[str, str], str] = {}  # (namespace, name) -> last good PEM path
        self._errors: dict[tuple[str, str], str] = {}

    def update(self, namespace: str, name: str, secret: Obj | None) -> None:
        """Take in a Secret's current state (None: it does not exist)."""
        ref = (namespace, name)
        if secret is None:
            self._good.pop(ref, None)
            self._errors[ref] = SECRET_NOT_FOUND
            return
        try:
            pem = check_pair(secret)
        except ValueError as e:
            self._errors[ref] = str(e)
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / f"{hashlib.sha256(pem).hexdigest()[:24]}.pem"
        if not path.exists():
            _write(path, pem)
        self._good[ref] = str(path)
        self._errors.pop(ref, None)

    def unreadable(self, namespace: str, name: str, why: str) -> None:
        """Not read yet (its watch has not listed): the last good certificate, if any, stays."""
        self._errors[(namespace, name)] = why

    def forget(self, namespace: str, name: str) -> None:
        self._good.pop((namespace, name), None)
        self._errors.pop((namespace, name), None)

    def lookup(self, namespace: str, name: str) -> Cert:
        ref = (namespace, name)
        return Cert(self._good.get(ref, ""), self._errors.get(ref, ""))

    def collect(self, keep: set[str]) -> None:
        """Remove certificate files no configuration uses (``keep``: those in use)."""
        if not self.dir.is_dir():
            return
        keep = keep | set(self._good.values()) | {str(self.dir / DEFAULT_CERT)}
        for path in self.dir.glob("*.pem"):
            if str(path) not in keep:
                path.unlink(missing_ok=True)

    def default_cert(self) -> str:
        """A self-signed certificate for HTTPS to hosts with none (made once per node)."""
        path = self.dir / DEFAULT_CERT
        if not path.exists():
            self.dir.mkdir(parents=True, exist_ok=True)
            _write(path, self_signed("Bosun Ingress Default Certificate"))
        return str(path)


def self_signed(common_name: str, hosts: tuple[str, ...] = ()) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=3650)))
    if hosts:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), False)
    cert = builder.sign(key, hashes.SHA256())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem + cert.public_bytes(serialization.Encoding.PEM)

"""Encryption at rest: the API server seals chosen resources (Secrets by default) before
they reach the store, so a copy of the SQLite file or of etcd does not give them away.

The configuration is kube-apiserver's EncryptionConfiguration, so the same file works in
both and its documented behaviour carries over:

* Each rule lists resources (``secrets``, ``deployments.apps``, ``*.apps``, ``*.``, ``*.*``)
  and an ordered list of providers; the first rule that names a resource wins.
* The first provider (with its first key) writes; every listed key reads. A stored value
  says which key sealed it (``k8s:enc:aesgcm:v1:<keyname>:``), so rotation is: add the new
  key first (every server), rewrite the objects, then drop the old key.
* ``identity: {}`` reads values written before encryption was turned on (plain JSON).

Only the sealing is done here; :class:`bosun.api.storage.Storage` and the watch cache call
:meth:`ResourceTransformer.to_store` / :meth:`ResourceTransformer.from_store` for the
resources :meth:`Encryption.table` lists, and nothing else pays for it.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ENCRYPTED_MARK = b"k8s:enc:"
CONFIG_NAME = "encryption.yaml"
API_VERSIONS = ("apiserver.config.k8s.io/v1", "v1")
KINDS = ("EncryptionConfiguration", "EncryptionConfig")


class EncryptionConfigError(ValueError):
    """The configuration file cannot be used (the server refuses to start with it)."""


class DecryptError(Exception):
    """A stored value cannot be turned back into the object: the message says which store
    key and which encryption key, since the fix is always in the configuration file."""

    def __init__(self, storage_key: str, message: str) -> None:
        super().__init__(f"unable to decrypt {storage_key}: {message}")
        self.storage_key = storage_key


class Provider(Protocol):
    """One key of one provider. ``prefix`` marks what it sealed (empty for identity)."""

    name: str
    prefix: bytes

    def seal(self, data: bytes, context: bytes) -> bytes: ...

    def open(self, payload: bytes, context: bytes) -> bytes: ...


class Identity:
    """No encryption: writes plain JSON, reads anything that carries no encryption prefix."""

    name = "identity"
    prefix = b""

    def seal(self, data: bytes, context: bytes) -> bytes:
        return data

    def open(self, payload: bytes, context: bytes) -> bytes:
        return payload


def _aes_prefix(provider: str, name: str, secret: bytes) -> bytes:
    """The prefix a value sealed with this AES key starts with (kube-apiserver's, so a store
    written by either reads in both), once the secret is a valid AES key."""
    if len(secret) not in (16, 24, 32):
        raise EncryptionConfigError(f"{provider} key {name!r}: the secret must be 16, 24 or 32 bytes, "
                                    f"got {len(secret)}")
    return f"k8s:enc:{provider}:v1:{name}:".encode()


class AESGCMKey:
    """AES-GCM with a random 96-bit nonce; the store key is authenticated with the data, so a
    sealed value copied to another key does not decrypt."""

    def __init__(self, name: str, secret: bytes) -> None:
        self.name = name
        self.prefix = _aes_prefix("aesgcm", name, secret)
        self._aead = AESGCM(secret)

    def seal(self, data: bytes, context: bytes) -> bytes:
        nonce = os.urandom(12)
        return self.prefix + nonce + self._aead.encrypt(nonce, data, context)

    def open(self, payload: bytes, context: bytes) -> bytes:
        if len(payload) < 12 + 16:
            raise ValueError("the sealed value is truncated")
        try:
            return self._aead.decrypt(payload[:12], payload[12:], context)
        except InvalidTag as exc:
            raise ValueError(f'aesgcm key "{self.name}" does not open it: the key\'s secret is not '
                             "the one it was written with") from exc


class AESCBCKey:
    """AES-CBC with PKCS#7 padding and a random IV, as kube-apiserver's aescbc (no MAC: a wrong
    secret is noticed by the padding or by the JSON that fails to parse)."""

    def __init__(self, name: str, secret: bytes) -> None:
        self.name = name
        self.prefix = _aes_prefix("aescbc", name, secret)
        self._key = secret

    def seal(self, data: bytes, context: bytes) -> bytes:
        iv = os.urandom(16)
        padder = padding.PKCS7(128).padder()
        enc = Cipher(algorithms.AES(self._key), modes.CBC(iv)).encryptor()
        body = enc.update(padder.update(data) + padder.finalize()) + enc.finalize()
        return self.prefix + iv + body

    def open(self, payload: bytes, context: bytes) -> bytes:
        if len(payload) < 32 or len(payload) % 16:
            raise ValueError("the sealed value is truncated")
        dec = Cipher(algorithms.AES(self._key), modes.CBC(payload[:16])).decryptor()
        unpadder = padding.PKCS7(128).unpadder()
        try:
            plain = unpadder.update(dec.update(payload[16:]) + dec.finalize()) + unpadder.finalize()
        except ValueError as exc:
            raise ValueError(f'aescbc key "{self.name}" does not open it: the key\'s secret is not '
                             "the one it was written with") from exc
        if not plain.startswith(b"{"):
            raise ValueError(f'aescbc key "{self.name}" does not open it: the key\'s secret is not '
                             "the one it was written with")
        return plain


@dataclass
class ResourceTransformer:
    """The providers of one rule: the first writes, all read (the value's prefix picks one)."""

    providers: list[Provider]
    source: str = ""

    @property
    def writer(self) -> Provider:
        return self.providers[0]

    @property
    def is_identity(self) -> bool:
        return all(isinstance(p, Identity) for p in self.providers)

    def is_stale(self, value: bytes) -> bool:
        """Stored with another key or provider than the writer: worth rewriting."""
        prefix = self.writer.prefix
        return not value.startswith(prefix) if prefix else value.startswith(ENCRYPTED_MARK)

    def to_store(self, key: str, data: bytes) -> bytes:
        return self.writer.seal(data, key.encode())

    def from_store(self, key: str, value: bytes) -> bytes:
        """The plain bytes of a stored value; DecryptError (naming the key) when no configured
        key opens it, never a silently empty object."""
        sealed = value.startswith(ENCRYPTED_MARK)
        for p in self.providers:
            if p.prefix:
                if not value.startswith(p.prefix):
                    continue
                try:
                    return p.open(value[len(p.prefix):], key.encode())
                except ValueError as exc:
                    raise DecryptError(key, f"{exc} (encryption configuration{self._where()})") from exc
            elif not sealed:
                return value
        if sealed:
            raise DecryptError(key, f"it was written with {describe_prefix(value)}, which is not in the "
                                    f"encryption configuration{self._where()}")
        raise DecryptError(key, f"it is stored unencrypted and the encryption configuration{self._where()} "
                                "has no identity provider to read it")

    def _where(self) -> str:
        return f" {self.source}" if self.source else ""


def describe_prefix(value: bytes) -> str:
    """``aesgcm key "key1"`` from ``k8s:enc:aesgcm:v1:key1:...``."""
    parts = value[:200].split(b":", 5)
    if len(parts) >= 5:
        return f'{parts[2].decode(errors="replace")} key "{parts[4].decode(errors="replace")}"'
    return "an unknown key"


@dataclass
class _Rule:
    resources: list[str]
    transformer: ResourceTransformer

    def matches(self, group_plural: str) -> bool:
        _, _, group = group_plural.partition(".")
        for r in self.resources:
            if r in ("*.*", group_plural):
                return True
            if r.startswith("*.") and r[2:] == group:
                return True  # "*." is the core group (empty), "*.apps" a named one
        return False


@dataclass
class Encryption:
    """A loaded configuration: which resources are sealed, and how."""

    rules: list[_Rule] = field(default_factory=list)
    source: str = ""

    def transformer(self, group_plural: str) -> ResourceTransformer | None:
        for rule in self.rules:
            if rule.matches(group_plural):
                return None if rule.transformer.is_identity else rule.transformer
        return None

    def table(self, group_plurals: Iterable[str]) -> dict[str, ResourceTransformer]:
        """group_plural -> transformer for the resources that are sealed (every other resource
        is absent: the API pays one dict lookup for it and nothing more)."""
        out: dict[str, ResourceTransformer] = {}
        for gp in group_plurals:
            t = self.transformer(gp)
            if t is not None:
                out[gp] = t
        return out


def _secret(provider: str, key: dict[str, Any]) -> tuple[str, bytes]:
    name = key.get("name")
    if not isinstance(name, str) or not name or ":" in name:
        raise EncryptionConfigError(f"{provider}: every key needs a name without ':' (got {name!r})")
    raw = key.get("secret")
    if not isinstance(raw, str):
        raise EncryptionConfigError(f"{provider} key {name!r}: secret must be base64 text")
    try:
        return name, base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EncryptionConfigError(f"{provider} key {name!r}: secret is not valid base64") from exc


def _providers(entries: Any, where: str) -> list[Provider]:
    if not isinstance(entries, list) or not entries:
        raise EncryptionConfigError(f"{where}: providers must be a non-empty list")
    out: list[Provider] = []
    for entry in entries:
        if not isinstance(entry, dict) or len(entry) != 1:
            raise EncryptionConfigError(f"{where}: each provider entry names exactly one provider")
        (kind, conf), = entry.items()
        if kind == "identity":
            out.append(Identity())
            continue
        if kind not in ("aesgcm", "aescbc"):
            raise EncryptionConfigError(f"{where}: provider {kind!r} is not supported here "
                                        "(use aesgcm, aescbc or identity)")
        keys = (conf or {}).get("keys") if isinstance(conf, dict) else None
        if not isinstance(keys, list) or not keys:
            raise EncryptionConfigError(f"{where}: {kind} needs at least one key")
        seen: set[str] = set()
        for key in keys:
            if not isinstance(key, dict):
                raise EncryptionConfigError(f"{where}: {kind} keys are name/secret pairs")
            name, secret = _secret(kind, key)
            if name in seen:
                raise EncryptionConfigError(f"{where}: {kind} key name {name!r} is listed twice")
            seen.add(name)
            out.append(AESGCMKey(name, secret) if kind == "aesgcm" else AESCBCKey(name, secret))
    return out


def parse_config(text: str, source: str = "") -> Encryption:
    """An EncryptionConfiguration document (YAML or JSON)."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise EncryptionConfigError(f"{source or 'encryption configuration'}: not valid YAML: {exc}") from exc
    where = source or "encryption configuration"
    if not isinstance(doc, dict) or doc.get("kind") not in KINDS or doc.get("apiVersion") not in API_VERSIONS:
        raise EncryptionConfigError(f"{where}: expected kind EncryptionConfiguration, "
                                    "apiVersion apiserver.config.k8s.io/v1")
    rules: list[_Rule] = []
    for i, item in enumerate(doc.get("resources") or []):
        names = item.get("resources") if isinstance(item, dict) else None
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise EncryptionConfigError(f"{where}: resources[{i}].resources must list resource names")
        providers = _providers(item.get("providers"), f"{where}: resources[{i}]")
        rules.append(_Rule(list(names), ResourceTransformer(providers, source)))
    return Encryption(rules, source)


def load_config(path: Path) -> Encryption:
    try:
        text = path.read_text()
    except OSError as exc:
        raise EncryptionConfigError(f"cannot read the encryption configuration {path}: "
                                    f"{exc.strerror or exc}") from exc
    return parse_config(text, str(path))


def new_config(key_name: str = "key1") -> str:
    """A fresh configuration: Secrets sealed with a random 256-bit AES-GCM key; identity
    last so that Secrets stored before encryption was on are still read."""
    secret = base64.b64encode(os.urandom(32)).decode()
    return (
        "# Bosun's encryption at rest (kube-apiserver's EncryptionConfiguration format).\n"
        "# Every API server on the same store needs this same file: copy it to the others.\n"
        "# Rotation: add a new key FIRST in the aesgcm list on every server, restart them, rewrite\n"
        "# the secrets (kubectl get secrets -A -o json | kubectl replace -f -), then drop the old key.\n"
        "apiVersion: apiserver.config.k8s.io/v1\n"
        "kind: EncryptionConfiguration\n"
        "resources:\n"
        "  - resources:\n"
        "      - secrets\n"
        "    providers:\n"
        "      - aesgcm:\n"
        "          keys:\n"
        f"            - name: {key_name}\n"
        f"              secret: {secret}\n"
        "      - identity: {}\n"
    )


def ensure_config(data_dir: Path) -> Path:
    """DATA_DIR/pki/encryption.yaml, made (mode 0600) at the first start. It appears complete
    and only once, so two servers starting on one data dir never end up with different keys."""
    path = data_dir / "pki" / CONFIG_NAME
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{CONFIG_NAME}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(new_config())
    try:
        os.link(tmp, path)  # appears whole or not at all; fails if another start made it first
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path

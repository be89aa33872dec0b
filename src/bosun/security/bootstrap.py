"""Swarm join tokens and the sealing of the cluster's bootstrap data.

Managers of one cluster must be one identity to their clients: the same CA, admin token and
encryption key, so that one kubeconfig works against any of them and a Secret written through
one reads through another. As k3s does with its bootstrap data, the first manager puts these
into the store, sealed, and a joining manager that holds the manager join token unseals them.

Two layers (envelope encryption), so that rotating the manager token never locks out a
manager that joined with the old one:

* the bootstrap data is sealed (AES-GCM) with a random 256-bit *cluster key*, which every
  manager keeps in ``pki/cluster.key``;
* the cluster key is wrapped (AES-GCM) with a key derived from the manager token (scrypt,
  random salt). Rotation re-wraps the cluster key; the old token then unwraps nothing.

Tokens look like Docker's (``SWMTKN-1-<CA digest>-<secret>``): the CA digest lets a joining
machine check the CA a server hands it before it sends the secret anywhere.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import string
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import load_pem_x509_certificate

TOKEN_PREFIX = "SWMTKN-1-"
ROLES = ("worker", "manager")
_BASE36 = string.digits + string.ascii_lowercase
_DIGEST_LEN = 50  # base36 digits of a SHA-256
_SECRET_LEN = 25
_NONCE = 12


class BadToken(ValueError):
    """Not a swarm join token at all (a typo, a truncated paste)."""


class SealError(ValueError):
    """A sealed value does not open with this key (wrong or rotated token, another cluster)."""


def _base36(data: bytes, width: int) -> str:
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = _BASE36[r] + out
    return out.rjust(width, "0")


def ca_digest(ca_pem: bytes) -> str:
    """The CA's fingerprint as a token carries it: SHA-256 of its DER form, in base 36."""
    der = load_pem_x509_certificate(ca_pem).public_bytes(Encoding.DER)
    return _base36(hashlib.sha256(der).digest(), _DIGEST_LEN)


def new_token(ca_pem: bytes) -> str:
    secret = "".join(secrets.choice(_BASE36) for _ in range(_SECRET_LEN))
    return f"{TOKEN_PREFIX}{ca_digest(ca_pem)}-{secret}"


@dataclass(frozen=True, slots=True)
class TokenParts:
    ca_digest: str
    secret: str


def parse_token(text: str) -> TokenParts:
    """Split a join token, or say in one line why it is not one."""
    text = text.strip()
    if not text.startswith(TOKEN_PREFIX):
        raise BadToken(f"invalid join token: it must start with {TOKEN_PREFIX}")
    digest, sep, secret = text[len(TOKEN_PREFIX):].partition("-")
    if not sep or len(digest) != _DIGEST_LEN or len(secret) != _SECRET_LEN or \
            not set(digest + secret) <= set(_BASE36):
        raise BadToken("invalid join token: malformed (copy it again from `bosun swarm join-token`)")
    return TokenParts(digest, secret)


def looks_like_token(text: str) -> bool:
    return text.startswith(TOKEN_PREFIX)


def token_digest(token: str) -> str:
    """What the store keeps to recognise a token (never the token itself)."""
    return hashlib.sha256(token.strip().encode()).hexdigest()


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def new_salt() -> bytes:
    return os.urandom(16)


def token_key(token: str, salt: bytes) -> bytes:
    """The key a token stands for: scrypt makes guessing tokens offline from a copy of the
    store slow, on top of their 128 random bits."""
    return Scrypt(salt=salt, length=32, n=2**14, r=8, p=1).derive(token.strip().encode())


def seal(key: bytes, data: bytes, context: bytes) -> bytes:
    nonce = os.urandom(_NONCE)
    return nonce + AESGCM(key).encrypt(nonce, data, context)


def unseal(key: bytes, blob: bytes, context: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(blob[:_NONCE], blob[_NONCE:], context)
    except (InvalidTag, ValueError) as e:
        raise SealError("the sealed data does not open with this key") from e


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode(), validate=True)

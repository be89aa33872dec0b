"""ServiceAccount tokens: signed, bound, expiring JWTs, as Kubernetes' TokenRequest issues them.

A pod's token says who it runs as (``system:serviceaccount:NS:NAME``), for which audience,
until when, and which pod it is bound to; it is signed with the cluster's service-account
key (``pki/sa.key``, ES256), so any API server holding that key accepts it and nothing is
stored per token. A token stops working when it expires, or when the ServiceAccount or the
pod it is bound to is deleted (or replaced by a namesake with another uid): the
authenticator asks :class:`Liveness` about them.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bosun.security.files import write_atomic
from bosun.security.identity import User, authenticated

# kubeadm's default --service-account-issuer; the API's own audience is the issuer.
ISSUER = "https://kubernetes.default.svc.cluster.local"
SA_PREFIX = "system:serviceaccount:"
SA_GROUP = "system:serviceaccounts"
# TokenRequest's bounds (upstream: 10 minutes at least; 1 hour by default).
MIN_EXPIRATION = 600
DEFAULT_EXPIRATION = 3600
MAX_EXPIRATION = 48 * 3600


def key_path(data_dir: Path) -> Path:
    return Path(data_dir) / "pki" / "sa.key"


def ensure_key(data_dir: Path) -> ec.EllipticCurvePrivateKey:
    """The cluster's service-account signing key, made at the first start."""
    path = key_path(data_dir)
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key
    key = ec.generate_private_key(ec.SECP256R1())
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()))
    return key


@dataclass(frozen=True, slots=True)
class BoundTo:
    """The object a token is bound to (a Pod, as the node agent asks), or the ServiceAccount."""

    kind: str
    name: str
    uid: str


@dataclass(frozen=True, slots=True)
class Claims:
    namespace: str
    account: str
    account_uid: str
    bound: BoundTo | None
    expires: int


class Liveness(Protocol):
    """Whether the objects a token names still exist with those uids (the watch cache knows)."""

    def account_uid(self, namespace: str, name: str) -> str | None: ...

    def pod_uid(self, namespace: str, name: str) -> str | None: ...


def user_of(c: Claims) -> User:
    return authenticated(f"{SA_PREFIX}{c.namespace}:{c.account}", SA_GROUP, f"{SA_GROUP}:{c.namespace}",
                         uid=c.account_uid)


def looks_like_jwt(token: str) -> bool:
    return token.startswith("eyJ") and token.count(".") == 2


class ServiceAccountTokens:
    def __init__(self, data_dir: Path, issuer: str = ISSUER) -> None:
        self.issuer = issuer
        self.audiences = (issuer,)
        self._key = ensure_key(data_dir)
        self._public = self._key.public_key()

    def issue(self, namespace: str, account: str, account_uid: str, *, audiences: list[str] | None = None,
              expiration: int = DEFAULT_EXPIRATION, bound: BoundTo | None = None) -> tuple[str, int]:
        """A signed token and its expiry (unix seconds)."""
        now = int(time.time())
        exp = now + expiration
        private: dict[str, Any] = {"namespace": namespace,
                                   "serviceaccount": {"name": account, "uid": account_uid}}
        if bound is not None:
            private[bound.kind.lower()] = {"name": bound.name, "uid": bound.uid}
        claims = {"iss": self.issuer, "sub": f"{SA_PREFIX}{namespace}:{account}",
                  "aud": audiences or list(self.audiences), "iat": now, "nbf": now, "exp": exp,
                  "jti": str(uuid.uuid4()), "kubernetes.io": private}
        return jwt.encode(claims, self._key, algorithm="ES256"), exp

    def verify(self, token: str, live: Liveness) -> Claims | None:
        """The token's claims if it is ours, meant for this API, unexpired, and names live
        objects; None otherwise (the request is then unauthenticated)."""
        try:
            raw = jwt.decode(token, self._public, algorithms=["ES256"], audience=list(self.audiences),
                             issuer=self.issuer, options={"require": ["exp", "sub", "aud"]})
        except jwt.PyJWTError:
            return None
        private = raw.get("kubernetes.io")
        if not isinstance(private, dict):
            return None
        ns = str(private.get("namespace") or "")
        sa = private.get("serviceaccount") or {}
        name, uid = str(sa.get("name") or ""), str(sa.get("uid") or "")
        if not ns or not name or live.account_uid(ns, name) != uid:
            return None
        bound: BoundTo | None = None
        pod = private.get("pod")
        if isinstance(pod, dict):
            bound = BoundTo("Pod", str(pod.get("name") or ""), str(pod.get("uid") or ""))
            if live.pod_uid(ns, bound.name) != bound.uid:
                return None
        return Claims(ns, name, uid, bound, int(raw["exp"]))

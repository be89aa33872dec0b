"""Bearer tokens: the admin token and bootstrap-style join tokens.

Tokens live next to the CA under ``data_dir/pki`` (mode 0600) so that a restarted server
keeps accepting the kubeconfigs and join commands it handed out before. Join tokens follow
Kubernetes' bootstrap-token shape (``abcdef.0123456789abcdef``): the id part is public and
used for lookup, only the secret part is compared, in constant time.
"""

from __future__ import annotations

import hmac
import os
import re
import secrets
import string
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

ADMIN_USER = "admin"
NODE_BOOTSTRAP_USER = "system:node-bootstrap"

_JOIN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
_ALPHABET = string.ascii_lowercase + string.digits


def _pki(data_dir: Path) -> Path:
    d = Path(data_dir) / "pki"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _write_private(path: Path, data: bytes) -> None:
    """Atomic write that is 0600 from creation on, so a secret is never briefly readable."""
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def admin_token_path(data_dir: Path) -> Path:
    return Path(data_dir) / "pki" / "admin.token"


def join_tokens_path(data_dir: Path) -> Path:
    return Path(data_dir) / "pki" / "join-tokens.json"


def ensure_admin_token(data_dir: Path) -> str:
    """Return the cluster's admin token, creating it on first start."""
    path = _pki(data_dir) / "admin.token"
    if path.exists():
        tok = path.read_text().strip()
        if tok:
            return tok
    tok = secrets.token_urlsafe(32)
    _write_private(path, tok.encode() + b"\n")
    return tok


@dataclass(frozen=True, slots=True)
class JoinToken:
    id: str
    secret: str
    expires: float | None  # unix time; None = never

    @property
    def token(self) -> str:
        return f"{self.id}.{self.secret}"

    def expired(self, now: float) -> bool:
        return self.expires is not None and now >= self.expires


def _load_join_tokens(data_dir: Path) -> dict[str, JoinToken]:
    path = join_tokens_path(data_dir)
    if not path.exists():
        return {}
    try:
        raw = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError:
        return {}
    out: dict[str, JoinToken] = {}
    for item in raw.get("tokens", []):
        tok = JoinToken(str(item["id"]), str(item["secret"]), item.get("expires"))
        out[tok.id] = tok
    return out


def _save_join_tokens(data_dir: Path, tokens: dict[str, JoinToken]) -> None:
    body = {"tokens": [{"id": t.id, "secret": t.secret, "expires": t.expires} for t in tokens.values()]}
    _write_private(join_tokens_path(data_dir), orjson.dumps(body, option=orjson.OPT_INDENT_2))


def _rand(n: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


def create_join_token(data_dir: Path, ttl_seconds: int | None = None) -> str:
    """Mint a join token; expired tokens are pruned from the file while we are at it."""
    _pki(data_dir)
    now = time.time()
    tokens = {k: t for k, t in _load_join_tokens(data_dir).items() if not t.expired(now)}
    tid = _rand(6)
    while tid in tokens:
        tid = _rand(6)
    tok = JoinToken(tid, _rand(16), now + ttl_seconds if ttl_seconds is not None else None)
    tokens[tid] = tok
    _save_join_tokens(data_dir, tokens)
    return tok.token


class TokenAuthenticator:
    """Maps a bearer token to a user name.

    The join-token file is re-read when it changes on disk, so ``bosun token create`` run
    from another process takes effect without restarting the server.
    """

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = Path(data_dir)
        self._admin = ensure_admin_token(self._data_dir).encode()
        self._static: dict[str, str] = {}
        self._join: dict[str, JoinToken] = {}
        self._join_mtime: int | None = None
        self._reload_join()

    def add_token(self, token: str, user: str) -> None:
        """Register another token (e.g. a service account's) for the life of this process."""
        self._static[token] = user

    def _reload_join(self) -> None:
        path = join_tokens_path(self._data_dir)
        try:
            mtime = path.stat().st_mtime_ns
        except FileNotFoundError:
            self._join, self._join_mtime = {}, None
            return
        if mtime != self._join_mtime:
            self._join = _load_join_tokens(self._data_dir)
            self._join_mtime = mtime

    def authenticate(self, header_value: str | None) -> str | None:
        if not header_value:
            return None
        scheme, _, tok = header_value.strip().partition(" ")
        tok = tok.strip()
        if scheme.lower() != "bearer" or not tok:
            return None
        raw = tok.encode()
        if hmac.compare_digest(raw, self._admin):
            return ADMIN_USER
        m = _JOIN_RE.match(tok)
        if m:
            self._reload_join()
            known = self._join.get(m.group(1))
            if known is not None and hmac.compare_digest(m.group(2).encode(), known.secret.encode()):
                return None if known.expired(time.time()) else NODE_BOOTSTRAP_USER
            return None
        user: str | None = None
        for candidate, name in self._static.items():
            if hmac.compare_digest(raw, candidate.encode()):
                user = name
        return user

"""Bearer tokens: the admin token, user tokens, per-node credentials and join tokens.

Tokens live next to the CA under ``data_dir/pki`` (mode 0600) so that a restarted server
keeps accepting the kubeconfigs and join commands it handed out before. Join tokens follow
Kubernetes' bootstrap-token shape (``abcdef.0123456789abcdef``): the id part is public and
used for lookup, only the secret part is compared, in constant time.

Who each credential is (what RBAC and the node authorizer see):

- the admin token: ``bosun-admin`` in ``system:masters`` (never evaluated, always allowed);
- a user token (``bosun token create --user NAME --group G``, like kube-apiserver's
  ``--token-auth-file``): that user and those groups; only a SHA-256 of it is kept on disk;
- a join token: ``system:bootstrap:<id>`` in ``system:bootstrappers``, which RBAC lets do one
  thing: ask for a node credential (see :mod:`bosun.security.nodecreds`);
- a swarm join token (``SWMTKN-1-...``, :mod:`bosun.security.bootstrap`): likewise a
  bootstrapper, named ``system:bootstrap:swarm-worker`` or ``system:bootstrap:swarm-manager``
  so that the join endpoint knows which role it joins as; only their digests are known here,
  kept current by :class:`bosun.security.cluster.ClusterIdentity`;
- a node credential: ``system:node:<name>`` in ``system:nodes``, confined to its own objects
  by :mod:`bosun.security.authz.node`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson

from bosun.security.files import write_atomic
from bosun.security.identity import ADMIN, BOOTSTRAP_PREFIX, BOOTSTRAPPERS, User, authenticated, node_user

ADMIN_USER = ADMIN.name
SWARM_WORKER = BOOTSTRAP_PREFIX + "swarm-worker"
SWARM_MANAGER = BOOTSTRAP_PREFIX + "swarm-manager"
SWARM_TOKEN_PREFIX = "SWMTKN-1-"

_JOIN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
_ALPHABET = string.ascii_lowercase + string.digits


def _pki(data_dir: Path) -> Path:
    d = Path(data_dir) / "pki"
    d.mkdir(parents=True, exist_ok=True)
    return d


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
    write_atomic(path, tok.encode() + b"\n")
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
    write_atomic(join_tokens_path(data_dir), orjson.dumps(body, option=orjson.OPT_INDENT_2))


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


def users_path(data_dir: Path) -> Path:
    return Path(data_dir) / "pki" / "users.json"


def node_tokens_path(data_dir: Path) -> Path:
    return Path(data_dir) / "pki" / "node-tokens.json"


def _digest(token: str) -> str:
    """Files keep only this: a leaked users.json or node-tokens.json grants nothing."""
    return hashlib.sha256(token.encode()).hexdigest()


def _load_json(path: Path) -> dict[str, object]:
    try:
        raw = orjson.loads(path.read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return {}
    return raw if isinstance(raw, dict) else {}


def create_user_token(data_dir: Path, user: str, groups: list[str] | tuple[str, ...] = ()) -> str:
    """Mint a bearer token for a (non-admin) user; what it may do is up to RBAC bindings."""
    _pki(data_dir)
    path = users_path(data_dir)
    body = _load_json(path)
    tokens = body.get("tokens")
    entries: list[object] = list(tokens) if isinstance(tokens, list) else []
    tok = secrets.token_urlsafe(32)
    entries.append({"sha256": _digest(tok), "user": user, "uid": secrets.token_hex(8), "groups": list(groups)})
    write_atomic(path, orjson.dumps({"tokens": entries}, option=orjson.OPT_INDENT_2))
    return tok


def issue_node_token(data_dir: Path, node: str) -> str:
    """A node's own credential; issuing one again replaces (revokes) the previous one."""
    _pki(data_dir)
    path = node_tokens_path(data_dir)
    body = _load_json(path)
    nodes = body.get("nodes")
    table: dict[str, object] = dict(nodes) if isinstance(nodes, dict) else {}
    tok = secrets.token_urlsafe(32)
    table[node] = _digest(tok)
    write_atomic(path, orjson.dumps({"nodes": table}, option=orjson.OPT_INDENT_2))
    return tok


class _Watched:
    """A credentials file re-read when it changes on disk, so ``bosun token create`` run from
    another process takes effect without restarting the server."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.mtime: int | None = -1

    def changed(self) -> bool:
        try:
            mtime: int | None = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            mtime = None
        if mtime == self.mtime:
            return False
        self.mtime = mtime
        return True


class TokenAuthenticator:
    """Maps a bearer token to a :class:`~bosun.security.identity.User`.

    Known user and node tokens are found by their digest (a dict hit: the hot path); only an
    unknown token makes us look at the files again.
    """

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = Path(data_dir)
        self._admin = ensure_admin_token(self._data_dir).encode()
        self._static: dict[str, User] = {}
        self._join: dict[str, JoinToken] = {}
        self._join_file = _Watched(join_tokens_path(self._data_dir))
        self._by_digest: dict[str, User] = {}
        self._users_file = _Watched(users_path(self._data_dir))
        self._nodes_file = _Watched(node_tokens_path(self._data_dir))
        self._user_digests: dict[str, User] = {}
        self._node_digests: dict[str, User] = {}
        self._swarm: dict[str, User] = {}
        # Told when this server issued a node credential (the cluster identity shares it with
        # the other managers).
        self.on_node_token: Callable[[], None] | None = None
        self._reload_join()
        self._reload_digests()

    def add_token(self, token: str, user: str | User) -> None:
        """Register another token (e.g. a service account's) for the life of this process."""
        self._static[token] = user if isinstance(user, User) else authenticated(user)

    def set_swarm_digests(self, worker: str, manager: str) -> None:
        """The swarm tokens now current (rotation replaces them: the old ones stop working)."""
        self._swarm = {worker: authenticated(SWARM_WORKER, BOOTSTRAPPERS),
                       manager: authenticated(SWARM_MANAGER, BOOTSTRAPPERS)}

    def issue_node_token(self, node: str) -> str:
        """Issue (or replace) a node's credential and accept it at once."""
        tok = issue_node_token(self._data_dir, node)
        self._reload_digests()
        if self.on_node_token is not None:
            self.on_node_token()
        return tok

    def _reload_join(self) -> None:
        if self._join_file.changed():
            self._join = _load_join_tokens(self._data_dir)

    def _reload_digests(self) -> None:
        if self._users_file.changed():
            users: dict[str, User] = {}
            entries = _load_json(self._users_file.path).get("tokens")
            for e in entries if isinstance(entries, list) else []:
                if isinstance(e, dict) and e.get("sha256") and e.get("user"):
                    users[str(e["sha256"])] = authenticated(str(e["user"]), *map(str, e.get("groups") or []),
                                                             uid=str(e.get("uid") or ""))
            self._user_digests = users
        if self._nodes_file.changed():
            table = _load_json(self._nodes_file.path).get("nodes")
            self._node_digests = {str(d): node_user(str(n)) for n, d in table.items()} if isinstance(table, dict) \
                else {}
        self._by_digest = {**self._user_digests, **self._node_digests}

    def authenticate(self, header_value: str | None) -> User | None:
        if not header_value:
            return None
        scheme, _, tok = header_value.strip().partition(" ")
        tok = tok.strip()
        if scheme.lower() != "bearer" or not tok:
            return None
        raw = tok.encode()
        if hmac.compare_digest(raw, self._admin):
            return ADMIN
        m = _JOIN_RE.match(tok)
        if m:
            self._reload_join()
            known = self._join.get(m.group(1))
            if known is not None and hmac.compare_digest(m.group(2).encode(), known.secret.encode()):
                if known.expired(time.time()):
                    return None
                return authenticated(BOOTSTRAP_PREFIX + known.id, BOOTSTRAPPERS)
            return None
        digest = _digest(tok)
        if tok.startswith(SWARM_TOKEN_PREFIX):
            return next((who for d, who in self._swarm.items() if hmac.compare_digest(d, digest)), None)
        found = self._by_digest.get(digest)
        if found is None:
            self._reload_digests()
            found = self._by_digest.get(digest)
        if found is not None:
            return found
        user: User | None = None
        for candidate, who in self._static.items():
            if hmac.compare_digest(raw, candidate.encode()):
                user = who
        return user

"""One identity for every manager of a cluster, kept in the store (see :mod:`.bootstrap`).

At its start a server settles which cluster it serves:

* ``--join``/``--token`` with the manager token: it unwraps the cluster key, unseals the
  bootstrap data (CA cert and key, admin token, encryption configuration, service-account
  signing key) into its own
  ``pki/`` and serves with them; a worker, wrong or rotated token is refused before anything
  is written;
* it holds ``pki/cluster.key`` (it joined or initialized before): it refreshes its files from
  the store;
* the store holds no identity yet: this is the first manager; it writes its own (made as
  before) with fresh worker and manager tokens;
* otherwise it serves with an identity of its own, as servers did before managers shared one
  (a warning says how to join instead).

Node credentials and user tokens (digests only) are mirrored through the store too
(:mod:`.credmirror`), so that an agent that obtained its credential from one manager, or a
user whose token was made on one manager's machine, is known to all of them. Nothing here is under
``/registry/``: the API never serves these keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import orjson

from bosun.security import bootstrap as bs
from bosun.security.credmirror import CredentialMirror
from bosun.security.encryption import CONFIG_NAME, ensure_config
from bosun.security.files import write_atomic
from bosun.security.pki import ensure_pki, pki_dir
from bosun.security.satokens import ensure_key as ensure_sa_key
from bosun.security.satokens import key_path as sa_key_path
from bosun.security.tokens import ensure_admin_token
from bosun.store.base import KeyExistsError, Store, StoreError

log = logging.getLogger(__name__)

PREFIX = "/bosun/cluster/"
IDENTITY_KEY = PREFIX + "identity"
KEY_FILE = "cluster.key"
# What travels; the serving certificate does not (each manager has its own, from the one CA).
SA_KEY_FILE = sa_key_path(Path(".")).name
FILES = {"ca.crt": 0o644, "ca.key": 0o600, "admin.token": 0o600, CONFIG_NAME: 0o600, SA_KEY_FILE: 0o600}
_DATA = b"bosun-bootstrap-data"
_WRAP = b"bosun-cluster-key"


class JoinRefused(ValueError):
    """This server may not take the cluster's identity; the message is the one line to show."""


class TokenListener(Protocol):
    """The authenticator: told which swarm tokens are current (their digests); tells us when
    it issued a node credential."""

    on_node_token: Callable[[], None] | None

    def set_swarm_digests(self, worker: str, manager: str) -> None: ...


@dataclass(slots=True)
class Record:
    """The store's ``identity`` value: nothing in it is readable without a key."""

    salt: bytes
    wrapped: bytes  # the cluster key, sealed with the manager token's key
    data: bytes  # the bootstrap data, sealed with the cluster key
    worker: str  # token digests
    manager: str
    revision: int = 0

    def dumps(self) -> bytes:
        return orjson.dumps({"version": 1, "salt": bs.b64(self.salt), "wrappedKey": bs.b64(self.wrapped),
                             "data": bs.b64(self.data), "workerDigest": self.worker,
                             "managerDigest": self.manager})

    @classmethod
    def loads(cls, raw: bytes, revision: int) -> Record:
        d = orjson.loads(raw)
        return cls(bs.unb64(d["salt"]), bs.unb64(d["wrappedKey"]), bs.unb64(d["data"]),
                   str(d["workerDigest"]), str(d["managerDigest"]), revision)


async def _read(store: Store) -> Record | None:
    kv = await store.get(IDENTITY_KEY)
    return None if kv is None else Record.loads(kv.value, kv.mod_revision)


def _bundle(data_dir: Path, tokens: dict[str, str], encryption: Path | None) -> bytes:
    """The bootstrap data: the files of :data:`FILES` (the encryption configuration from where
    this server reads it) and the current tokens."""
    d = pki_dir(data_dir)
    paths = {name: d / name for name in FILES}
    if encryption is not None:
        paths[CONFIG_NAME] = encryption
    return orjson.dumps({"files": {name: bs.b64(p.read_bytes()) for name, p in paths.items()}, "tokens": tokens})


def _install(data_dir: Path, files: dict[str, str]) -> None:
    d = pki_dir(data_dir)
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    for name, mode in FILES.items():
        if name not in files:  # written by a manager older than this file's sharing
            continue
        body = bs.unb64(files[name])
        path = d / name
        if not path.exists() or path.read_bytes() != body:
            write_atomic(path, body, mode)


class ClusterIdentity:
    """The shared identity as one manager holds it: the cluster key and the latest record."""

    def __init__(self, store: Store, data_dir: Path, key: bytes, record: Record,
                 encryption: Path | None = None) -> None:
        self.store = store
        self.data_dir = Path(data_dir)
        self.encryption = encryption
        self.key = key
        self.record = record
        self._follower: asyncio.Task[None] | None = None
        self.mirror = CredentialMirror(store, self.data_dir)

    # -- reading ---------------------------------------------------------------------

    def _open(self, record: Record) -> dict[str, object]:
        return dict(orjson.loads(bs.unseal(self.key, record.data, _DATA)))

    def _tokens(self, record: Record) -> dict[str, str]:
        tokens = self._open(record)["tokens"]
        return {str(k): str(v) for k, v in tokens.items()} if isinstance(tokens, dict) else {}

    def tokens(self) -> dict[str, str]:
        """The current worker and manager tokens."""
        return self._tokens(self.record)

    @property
    def ca_pem(self) -> bytes:
        return (pki_dir(self.data_dir) / "ca.crt").read_bytes()

    # -- rotation --------------------------------------------------------------------

    async def rotate(self, role: str) -> str:
        """A new token for ``role``; the old one joins nothing from now on (nodes that joined
        with it keep their own credentials)."""
        if role not in bs.ROLES:
            raise ValueError(f"unknown role {role!r}: worker or manager")
        while True:
            current = await _read(self.store)
            if current is None:
                raise JoinRefused("the cluster's identity is gone from the store")
            tokens = self._tokens(current)
            tokens[role] = bs.new_token(self.ca_pem)
            salt, wrapped = current.salt, current.wrapped
            if role == "manager":
                salt = bs.new_salt()
                wrapped = bs.seal(bs.token_key(tokens["manager"], salt), self.key, _WRAP)
            data = bs.seal(self.key, _bundle(self.data_dir, tokens, self.encryption), _DATA)
            rec = Record(salt, wrapped, data, bs.token_digest(tokens["worker"]), bs.token_digest(tokens["manager"]))
            try:
                rec.revision = await self.store.update(IDENTITY_KEY, rec.dumps(), current.revision)
            except StoreError as e:
                log.info("rotation raced another manager (%s); again", e)
                continue
            self.record = rec
            return tokens[role]

    # -- following the store -----------------------------------------------------------

    def follow(self, listener: TokenListener) -> None:
        """Keep ``listener`` told of rotations made on any manager, and this manager's
        credential tables in step with the others' (:mod:`.credmirror`), until :meth:`stop`."""
        listener.set_swarm_digests(self.record.worker, self.record.manager)
        listener.on_node_token = self.mirror.changed
        self.mirror.start()
        self._follower = asyncio.get_running_loop().create_task(self._follow(listener), name="cluster-identity")

    async def _follow(self, listener: TokenListener) -> None:
        while True:
            try:
                current = await _read(self.store)
                rev = current.revision if current is not None else await self.store.current_revision()
                if current is not None:
                    self.record = current
                    listener.set_swarm_digests(current.worker, current.manager)
                async for ev in self.store.watch(IDENTITY_KEY, rev):
                    if ev.type != "DELETED" and ev.key == IDENTITY_KEY:
                        self.record = Record.loads(ev.value, ev.revision)
                        listener.set_swarm_digests(self.record.worker, self.record.manager)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the store was away: start over from a fresh read
                log.warning("following the cluster identity: %s; retrying", e)
                await asyncio.sleep(1.0)

    async def stop(self) -> None:
        await self.mirror.stop()
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
            self._follower = None


# -- settling at start ------------------------------------------------------------------


async def settle(store: Store, data_dir: Path, join_token: str = "",
                 encryption: Path | None = None, *, own_identity: bool = True) -> ClusterIdentity | None:
    """Make ``data_dir/pki`` hold the cluster's identity (see the module docstring); None when
    this server keeps an identity of its own. ``encryption``: the server's
    --encryption-config when it names one (it wins over the cluster's on this server).
    ``own_identity=False`` (a swarm manager): refuse rather than keep one of its own."""
    data_dir = Path(data_dir)
    key_path = pki_dir(data_dir) / KEY_FILE
    record = await _read(store)
    if join_token:
        return _join(store, data_dir, record, join_token, encryption)
    if record is not None and key_path.exists():
        key = key_path.read_bytes()
        ident = ClusterIdentity(store, data_dir, key, record, encryption)
        try:
            files = ident._open(record)["files"]
        except bs.SealError:
            raise JoinRefused(f"{data_dir} belongs to another cluster than the store's: "
                              "leave it (remove the data directory) or join with the manager token") from None
        assert isinstance(files, dict)
        _install(data_dir, files)
        return ident
    if record is None:
        try:
            return await _initialize(store, data_dir, encryption)
        except KeyExistsError:
            record = await _read(store)  # another manager initialized it at the same moment
    if not own_identity:
        raise JoinRefused("this store already holds a swarm: join it with its manager token "
                          "(bosun swarm join --token TOKEN HOST:PORT)")
    log.warning("the store already holds a cluster identity: this server keeps its own CA, tokens and "
                "encryption key; start it with the manager join token to serve the same cluster")
    return None


def _join(store: Store, data_dir: Path, record: Record | None, token: str,
          encryption: Path | None) -> ClusterIdentity:
    try:
        bs.parse_token(token)
    except bs.BadToken as e:
        raise JoinRefused(str(e)) from None
    if record is None:
        raise JoinRefused("there is no cluster to join in this store (no manager initialized it)")
    digest = bs.token_digest(token)
    if digest == record.worker:
        raise JoinRefused("this is a worker join token: a manager joins with the manager token "
                          "(bosun swarm join-token manager)")
    if digest != record.manager:
        raise JoinRefused("the join token is not valid for this cluster (wrong or rotated)")
    try:
        key = bs.unseal(bs.token_key(token, record.salt), record.wrapped, _WRAP)
    except bs.SealError:
        raise JoinRefused("the join token is not valid for this cluster (wrong or rotated)") from None
    ident = ClusterIdentity(store, data_dir, key, record, encryption)
    files = ident._open(record)["files"]
    assert isinstance(files, dict)
    _install(data_dir, files)
    write_atomic(pki_dir(data_dir) / KEY_FILE, key)
    return ident


async def _initialize(store: Store, data_dir: Path, encryption: Path | None) -> ClusterIdentity:
    """The first manager: its identity (made as a lone server makes it) becomes the cluster's."""
    pki = ensure_pki(data_dir, [])
    ensure_admin_token(data_dir)
    ensure_config(data_dir)
    ensure_sa_key(data_dir)
    key = bs.new_key()
    tokens = {role: bs.new_token(pki.ca_cert_pem) for role in bs.ROLES}
    salt = bs.new_salt()
    rec = Record(salt, bs.seal(bs.token_key(tokens["manager"], salt), key, _WRAP),
                 bs.seal(key, _bundle(data_dir, tokens, encryption), _DATA),
                 bs.token_digest(tokens["worker"]), bs.token_digest(tokens["manager"]))
    rec.revision = await store.create(IDENTITY_KEY, rec.dumps())
    write_atomic(pki_dir(data_dir) / KEY_FILE, key)
    return ClusterIdentity(store, data_dir, key, rec, encryption)

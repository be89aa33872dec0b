"""An etcd member run beside each manager, so that a swarm is highly available without an
etcd cluster of its own: ``bosun swarm init --store etcd`` starts the first member, and every
manager that joins adds one (Docker's managers carry the Raft log the same way; k3s's
``--cluster-init`` is the same idea). Three managers survive the loss of one; two do not (a
majority of two is two), as with Docker.

The members speak TLS only, to peers and clients, with certificates from a CA of their own
(``DATA_DIR/pki/etcd/``), not the cluster CA: a client certificate the cluster CA signs for a
user must not open the store. That CA travels to a joining manager in the answer to its
manager token (managers are trusted with the whole store anyway); the joiner issues its own
certificates, adds itself to the etcd cluster, and starts its member.

The store URL ``etcds://host:port[,host:port]`` names such members: the server connects with
the client certificate in ``DATA_DIR/pki/etcd/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import grpc
from aetcd import rpc

from bosun.security.files import write_atomic
from bosun.security.pki import issue_leaf, make_ca
from bosun.store.etcd import ETCD_SERVER_NAME, EtcdTLS, channel

log = logging.getLogger(__name__)

ETCD = "/usr/bin/etcd"
SCHEME = "etcds://"
DEFAULT_CLIENT_PORT = 2379
DEFAULT_PEER_PORT = 2380
CLUSTER_TOKEN = "bosun"


class EtcdMemberError(RuntimeError):
    """The member could not be started or joined; the message is the one line to show."""


def pki(data_dir: Path) -> Path:
    return data_dir / "pki" / "etcd"


def client_tls(data_dir: Path) -> EtcdTLS:
    """How this manager's server reaches the members (raises FileNotFoundError when the
    data dir holds no embedded etcd's certificates)."""
    d = pki(data_dir)
    return EtcdTLS((d / "ca.crt").read_bytes(), (d / "client.crt").read_bytes(), (d / "client.key").read_bytes())


def etcd_ca(data_dir: Path) -> tuple[bytes, bytes]:
    d = pki(data_dir)
    return (d / "ca.crt").read_bytes(), (d / "ca.key").read_bytes()


def prepare(data_dir: Path, host: str, ca: tuple[bytes, bytes] | None = None) -> None:
    """The etcd CA (the one given, else the one here, else a new one) and this member's
    certificates: one serving and peer certificate, one client certificate for the server."""
    d = pki(data_dir)
    d.mkdir(parents=True, exist_ok=True)
    d.chmod(0o700)
    if ca is None:
        try:
            ca = etcd_ca(data_dir)
        except FileNotFoundError:
            ca = make_ca("bosun-etcd-ca")
    write_atomic(d / "ca.crt", ca[0], 0o644)
    write_atomic(d / "ca.key", ca[1], 0o600)
    cert, key = issue_leaf(*ca, ETCD_SERVER_NAME, [host, "127.0.0.1", "localhost", ETCD_SERVER_NAME],
                           server=True, client=True)
    write_atomic(d / "member.crt", cert, 0o644)
    write_atomic(d / "member.key", key, 0o600)
    cert, key = issue_leaf(*ca, "bosun-apiserver", [], server=False, client=True)
    write_atomic(d / "client.crt", cert, 0o644)
    write_atomic(d / "client.key", key, 0o600)


@dataclass(frozen=True, slots=True)
class MemberAddress:
    host: str
    client_port: int = DEFAULT_CLIENT_PORT
    peer_port: int = DEFAULT_PEER_PORT

    @property
    def _host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    @property
    def client(self) -> str:
        return f"{self._host}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"https://{self._host}:{self.peer_port}"


def store_url(endpoints: list[str]) -> str:
    return SCHEME + ",".join(endpoints)


class EtcdMember:
    """This manager's etcd process: started with the manager, stopped with it (and killed by
    the kernel if the manager dies first: ``setpriv --pdeathsig``)."""

    def __init__(self, name: str, data_dir: Path, address: MemberAddress) -> None:
        self.name = name
        self.data_dir = data_dir
        self.address = address
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def member_dir(self) -> Path:
        return self.data_dir / "etcd"

    def argv(self, initial_cluster: str, state: str) -> list[str]:
        d, a = pki(self.data_dir), self.address
        client_url = f"https://{a.client}"
        argv = [
            ETCD, "--name", self.name, "--data-dir", str(self.member_dir / "data"),
            "--listen-client-urls", client_url, "--advertise-client-urls", client_url,
            "--listen-peer-urls", a.peer_url, "--initial-advertise-peer-urls", a.peer_url,
            "--initial-cluster", initial_cluster, "--initial-cluster-state", state,
            "--initial-cluster-token", CLUSTER_TOKEN,
            "--cert-file", str(d / "member.crt"), "--key-file", str(d / "member.key"),
            "--client-cert-auth", "--trusted-ca-file", str(d / "ca.crt"),
            "--peer-cert-file", str(d / "member.crt"), "--peer-key-file", str(d / "member.key"),
            "--peer-client-cert-auth", "--peer-trusted-ca-file", str(d / "ca.crt"),
            # A loaded machine misses 100 ms heartbeats: fewer needless elections.
            "--heartbeat-interval", "250", "--election-timeout", "2500",
        ]
        setpriv = shutil.which("setpriv")
        return [setpriv, "--pdeathsig", "TERM", *argv] if setpriv else argv

    def _spawn(self, argv: list[str]) -> subprocess.Popen[bytes]:
        if not Path(ETCD).exists():
            raise EtcdMemberError(f"error: {ETCD} is missing: install Debian's etcd-server to run an embedded etcd")
        self.member_dir.mkdir(parents=True, exist_ok=True)
        with open(self.member_dir / "etcd.log", "ab") as log_file:  # the child keeps its own copy
            return subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT)

    async def start(self, initial_cluster: str, state: str, within: float = 60.0) -> None:
        self.proc = self._spawn(self.argv(initial_cluster, state))
        tls = client_tls(self.data_dir)
        deadline = asyncio.get_running_loop().time() + within
        while not await healthy(self.address.client, tls):
            if self.proc.poll() is not None or asyncio.get_running_loop().time() > deadline:
                tail = (self.member_dir / "etcd.log").read_text(errors="replace")[-600:]
                await self.stop()
                raise EtcdMemberError(f"error: the embedded etcd did not start: {' '.join(tail.split()[-40:])}")
            await asyncio.sleep(0.2)

    async def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, 15)
        except subprocess.TimeoutExpired:
            proc.kill()
            await asyncio.to_thread(proc.wait)


async def healthy(endpoint: str, tls: EtcdTLS | None) -> bool:
    """Whether the member at ``endpoint`` answers a status call made with ``tls``."""
    ch = channel(endpoint, tls)
    try:
        await rpc.MaintenanceStub(ch).Status(rpc.StatusRequest(), timeout=2)
        return True
    except grpc.aio.AioRpcError:
        return False
    finally:
        await ch.close()


async def _cluster_call(endpoints: list[str], tls: EtcdTLS, method: str, request: object) -> object:
    """One Cluster API call, to the first member that answers."""
    last: grpc.aio.AioRpcError | None = None
    for endpoint in endpoints:
        ch = channel(endpoint, tls)
        try:
            return await getattr(rpc.ClusterStub(ch), method)(request, timeout=10)
        except grpc.aio.AioRpcError as e:
            # A member's refusal says more than another member being down: keep that one.
            if last is None or e.code() != grpc.StatusCode.UNAVAILABLE:
                last = e
        finally:
            await ch.close()
    why = last.details() if last is not None else "no member given"
    raise EtcdMemberError(f"error: no etcd member of the swarm answered ({why})")


async def _reconfigure(endpoints: list[str], tls: EtcdTLS, method: str, request: object, within: float) -> object:
    """A membership change, retried while etcd refuses it as unsafe for now: it waits until
    every member has been connected for a few seconds (its strict reconfiguration check), so
    managers joining or leaving one after the other are refused at first. A change that
    would lose the quorum is refused the same way, for good: that is given up after
    ``within`` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            return await _cluster_call(endpoints, tls, method, request)
        except EtcdMemberError as e:
            if "unhealthy cluster" not in str(e) or asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)


async def add_member(endpoints: list[str], tls: EtcdTLS, name: str, address: MemberAddress) -> tuple[int, str]:
    """Add this machine's member to the etcd cluster: (its member ID, the ``--initial-cluster``
    it must start with)."""
    resp = await _reconfigure(endpoints, tls, "MemberAdd", rpc.MemberAddRequest(peerURLs=[address.peer_url]), 60)
    assert isinstance(resp, rpc.MemberAddResponse)
    parts = []
    for m in resp.members:
        member_name = name if m.ID == resp.member.ID else m.name
        parts += [f"{member_name}={u}" for u in m.peerURLs]
    return resp.member.ID, ",".join(parts)


async def client_endpoints(endpoints: list[str], tls: EtcdTLS) -> list[str]:
    """Every started member's client address (host:port)."""
    resp = await _cluster_call(endpoints, tls, "MemberList", rpc.MemberListRequest())
    assert isinstance(resp, rpc.MemberListResponse)
    return [u.split("://", 1)[-1] for m in resp.members for u in m.clientURLs]


async def remove_self(endpoints: list[str], tls: EtcdTLS, address: MemberAddress) -> bool:
    """Take this machine's member out of the cluster (a manager that leaves), unless it is
    the last one; whether it was removed."""
    resp = await _cluster_call(endpoints, tls, "MemberList", rpc.MemberListRequest())
    assert isinstance(resp, rpc.MemberListResponse)
    mine = [m.ID for m in resp.members if address.peer_url in m.peerURLs]
    if not mine or len(resp.members) <= 1:
        log.warning("etcd member %s not removed: %s", address.peer_url,
                    "it is the last one" if mine else "it is not a member")
        return False
    # Asked of the other members: this one stops as it applies its own removal, and may
    # answer "server stopped" for a removal that took place.
    others = [u.split("://", 1)[-1] for m in resp.members if m.ID != mine[0] for u in m.clientURLs]
    try:
        await _reconfigure(others, tls, "MemberRemove", rpc.MemberRemoveRequest(ID=mine[0]), 30)
    except EtcdMemberError:
        after = await _cluster_call(others, tls, "MemberList", rpc.MemberListRequest())
        assert isinstance(after, rpc.MemberListResponse)
        if any(m.ID == mine[0] for m in after.members):
            raise
    return True


async def start_member(name: str, data_dir: Path, address: MemberAddress,
                       join: tuple[str, tuple[bytes, bytes]] | None = None) -> tuple[EtcdMember, str]:
    """Start this manager's member: the first of a new cluster, or (``join``: the swarm's
    store URL and etcd CA) one more member of the swarm's. Returns it and the store URL the
    server opens (every member's client address)."""
    member = EtcdMember(name, data_dir, address)
    own = [address.client]
    if (member.member_dir / "data").exists():  # this machine's member already (a restart): etcd knows its peers
        prepare(data_dir, address.host, join[1] if join else None)
        await member.start(f"{name}={address.peer_url}", "existing" if join else "new")
    elif join is None:
        prepare(data_dir, address.host)
        await member.start(f"{name}={address.peer_url}", "new")
    else:
        url, ca = join
        prepare(data_dir, address.host, ca)
        tls = client_tls(data_dir)
        existing = [e for e in url.removeprefix(SCHEME).split(",") if e]
        member_id, initial = await add_member(existing, tls, name, address)
        try:
            await member.start(initial, "existing")
        except BaseException:
            # An added member that never starts counts against the quorum: take it out again.
            with contextlib.suppress(EtcdMemberError):
                await _cluster_call(existing, tls, "MemberRemove", rpc.MemberRemoveRequest(ID=member_id))
            raise
    return member, store_url(await client_endpoints(own, client_tls(data_dir)) or own)


async def leave(member: EtcdMember) -> None:
    """A manager leaving the swarm: its member leaves the etcd cluster (unless it is the
    last), stops, and its data goes (a removed member cannot come back with it)."""
    removed = False
    try:
        removed = await remove_self([member.address.client], client_tls(member.data_dir), member.address)
    except (EtcdMemberError, OSError) as e:
        log.warning("etcd member %s not removed from the cluster: %s", member.address.peer_url, e)
    await member.stop()
    if removed:
        shutil.rmtree(member.member_dir, ignore_errors=True)

"""What a machine learns from a manager before it joins: ``bosun swarm join`` and
``bosun server --join``.

1. The token is checked for shape (a typo is refused here, without a round trip).
2. The manager's CA is fetched without trusting anything, and must have the digest the token
   carries: from then on the connection is verified, and the token goes only to a server of
   the swarm it belongs to (Docker's scheme).
3. The token is shown to the manager, which says the role it joins as (worker or manager) and
   what that role needs. A wrong or rotated token is refused there; nothing is registered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bosun.api.swarm_endpoints import CA_PATH
from bosun.client.failover import FailoverTransport
from bosun.client.kubeconfig import ClusterConfig
from bosun.client.rest import TRANSPORT_ERRORS, ApiError, Client
from bosun.security.authz.defaults import SWARM_JOIN_PATH
from bosun.security.bootstrap import BadToken, ca_digest, parse_token

log = logging.getLogger(__name__)


class JoinError(Exception):
    """Joining cannot go on; the message is the one line to show."""


@dataclass(frozen=True, slots=True)
class JoinInfo:
    role: str
    url: str  # the manager asked
    ca: bytes
    managers: list[str] = field(default_factory=list)  # every live manager's API URL
    store: str = ""  # managers: the store the swarm keeps its state in
    # managers of a swarm on its managers' own etcd members: the etcd CA (cert, key)
    etcd_ca: tuple[bytes, bytes] | None = None

    @property
    def servers(self) -> list[str]:
        """The manager asked first, then the others."""
        return [self.url, *(m for m in self.managers if m != self.url)]


DEFAULT_PORT = 6443


def manager_url(address: str) -> str:
    """``HOST[:PORT]`` (port 6443 unless given) or a URL -> ``https://HOST:PORT``."""
    address = address.strip().rstrip("/")
    if "://" in address:
        return address
    host, sep, port = address.rpartition(":")
    if not sep or host.endswith(":") or (host.startswith("[") != host.endswith("]")):
        host, port = address, str(DEFAULT_PORT)  # no port (a bare IPv6 address is bracketed here)
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise JoinError(f"error: invalid address {address!r}: want HOST:PORT of a manager")
    return f"https://{host}:{port}"


async def discover(address: str, token: str) -> JoinInfo:
    try:
        parts = parse_token(token)
    except BadToken as e:
        raise JoinError(f"error: {e}") from None
    url = manager_url(address)
    where = url.split("://", 1)[1]
    try:
        async with Client(ClusterConfig(server=url, insecure=True)) as anyone:
            ca = await anyone.request_raw("GET", CA_PATH, accept="*/*")
    except ApiError as e:
        raise JoinError(f"error: {where} is not a swarm manager ({e.message or e})") from None
    except TRANSPORT_ERRORS as e:
        raise JoinError(f"error: cannot reach the manager at {where}: {' '.join(str(e).split()) or type(e).__name__}"
                        ) from None
    try:
        digest = ca_digest(ca)
    except ValueError:
        raise JoinError(f"error: {where} answered with no CA certificate: not a swarm manager") from None
    if digest != parts.ca_digest:
        raise JoinError(f"error: the CA of {where} is not the one of the join token: not the swarm this token is for")
    try:
        async with Client(ClusterConfig(server=url, ca_data=ca, token=token.strip())) as joiner:
            answer = await joiner.request("POST", SWARM_JOIN_PATH, body={})
    except ApiError as e:
        if e.status == 401:
            raise JoinError("error: the join token is not valid for this swarm (wrong or rotated): "
                            "nothing was registered") from None
        raise JoinError(f"error: {e.message or e}") from None
    except TRANSPORT_ERRORS as e:
        raise JoinError(f"error: cannot reach the manager at {where}: {' '.join(str(e).split())}") from None
    return JoinInfo(str(answer.get("role") or ""), url, ca, [str(m) for m in answer.get("managers") or []],
                    str(answer.get("store") or ""), embedded_ca(answer))


def embedded_ca(answer: dict[str, Any]) -> tuple[bytes, bytes] | None:
    """The etcd CA a manager's answer carries when the swarm's store is the managers' own
    etcd members (bosun.store.etcdnode)."""
    if not answer.get("etcdCA"):
        return None
    return str(answer["etcdCA"]).encode(), str(answer.get("etcdCAKey") or "").encode()


async def follow_managers(client: Client, transport: FailoverTransport, on_new: Callable[[str], None],
                          every: float = 5.0) -> None:
    """Tell ``transport`` (and ``on_new``) of managers that join after this node did, asked
    with the node's own credential, until cancelled."""
    while True:
        await asyncio.sleep(every)
        try:
            answer = await client.request("POST", SWARM_JOIN_PATH, body={})
        except (ApiError, *TRANSPORT_ERRORS) as e:
            log.info("asking for the swarm's managers: %s", e)
            continue
        for url in transport.add_servers([str(m) for m in answer.get("managers") or []]):
            on_new(url)

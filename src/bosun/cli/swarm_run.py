"""The node a ``bosun swarm init``/``join`` runs in the foreground until it is stopped (Ctrl-C,
SIGTERM, or ``bosun swarm leave`` from another shell).

A manager is a control plane with this machine's agent beside it in one process (as
``bosun up``); a worker is an agent that talks to every manager it was told of and moves to
another when one goes away. ``DATA_DIR/swarm.json`` says which this machine is and which
process runs it: ``swarm leave`` reads it, ``swarm init``/``join`` refuse to run twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import orjson

from bosun.agent.agent import Agent
from bosun.agent.config import AgentConfig
from bosun.agent.hostinfo import node_ip_towards
from bosun.agent.runtime.select import make_driver
from bosun.aio import cancel_and_wait
from bosun.api.server import ServerConfig
from bosun.cli.agent_cmd import mount_cgroups
from bosun.cli.common import CliError
from bosun.cli.daemon import run_until_signal
from bosun.cli.swarm_demotion import wait_for_demotion
from bosun.cli.swarm_promotion import PromotedManager, PromotionSettings
from bosun.client.failover import FailoverTransport
from bosun.client.handover import HandoverTransport
from bosun.client.kubeconfig import ClusterConfig
from bosun.client.rest import Client, ssl_context
from bosun.client.transport import HttpTransport, LocalTransport
from bosun.controlplane import ControlPlane, ControlPlaneOptions
from bosun.security.cluster import ClusterIdentity
from bosun.security.files import write_atomic
from bosun.store.etcdnode import EtcdMember, EtcdMemberError, MemberAddress, start_member
from bosun.store.etcdnode import leave as leave_etcd
from bosun.swarm.joining import JoinInfo, follow_managers
from bosun.swarm.nodes import NODES, NodeView

STATE_FILE = "swarm.json"


@dataclass
class NodeOptions:
    """This machine as a node, whatever its role."""

    data_dir: Path
    name: str = ""
    runtime: str = "auto"
    agent_port: int = 10250
    node_network: bool = True
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def node_name(self) -> str:
        return (self.name or socket.gethostname()).lower()

    def agent_config(self, role: str) -> AgentConfig:
        # A node that leaves the swarm stops its tasks: nothing keeps running unmanaged.
        return AgentConfig(node_name=self.node_name, data_dir=self.data_dir / "agent", labels=self.labels,
                           role=role, listen_port=self.agent_port, drain_on_stop=True,
                           node_network=self.node_network)


# -- DATA_DIR/swarm.json -----------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_state(data_dir: Path) -> dict[str, Any] | None:
    """This machine's swarm membership, if the process that runs it is still there."""
    try:
        state = orjson.loads((data_dir / STATE_FILE).read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return None
    if not isinstance(state, dict) or not _alive(int(state.get("pid") or 0)):
        return None
    return state


def refuse_if_member(data_dir: Path) -> None:
    if read_state(data_dir) is not None:
        raise CliError('Error response from daemon: This node is already part of a swarm. Use "bosun swarm leave" '
                       "to leave this swarm and join another one.")


def _write_state(data_dir: Path, role: str, node: str, url: str) -> None:
    body = {"role": role, "node": node, "pid": os.getpid(), "url": url}
    data_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(data_dir / STATE_FILE, orjson.dumps(body, option=orjson.OPT_INDENT_2), 0o644)


def _forget(data_dir: Path) -> None:
    state = read_state(data_dir)
    if state is None or int(state.get("pid") or 0) == os.getpid():
        with contextlib.suppress(FileNotFoundError):
            (data_dir / STATE_FILE).unlink()


async def _node_id(client: Client, name: str) -> str:
    return NodeView(await client.get(NODES, name), "").id


# -- the two kinds of node -------------------------------------------------------------


Banner = Callable[[str, ClusterIdentity | None, str], str]


@dataclass
class Embedded:
    """This manager's own etcd member (bosun.store.etcdnode): where it listens, and for a
    joining manager the swarm's store URL and etcd CA."""

    address: MemberAddress
    join: tuple[str, tuple[bytes, bytes]] | None = None


def run_manager(node: NodeOptions, server: ServerConfig, options: ControlPlaneOptions, banner: Banner,
                embedded: Embedded | None = None) -> None:
    """A control plane and this machine's agent (and, ``embedded``, an etcd member under the
    control plane); ``banner(node ID, identity, API URL)`` is printed once all run. Demoted
    (``bosun node demote`` from any manager), the machine carries on as a worker
    (:mod:`bosun.cli.swarm_demotion`)."""
    config = node.agent_config("control-plane")
    options.node_name = config.node_name
    mount_cgroups()

    async def main() -> None:
        plane = ControlPlane(server, options)
        state: dict[str, Any] = {}
        tasks: list[asyncio.Task[None]] = []

        async def start() -> None:
            nonlocal plane
            if embedded is not None:
                try:
                    member, server.store_url = await start_member(config.node_name, server.data_dir,
                                                                  embedded.address, embedded.join)
                except EtcdMemberError as e:
                    raise CliError(str(e)) from None
                state["etcd"] = member
                plane = ControlPlane(server, options)  # on the store the member made
            try:
                await plane.start()
            except OSError as e:
                raise CliError(f"error: cannot serve on {server.listen}: {e.strerror or e}") from None
            except ValueError as e:  # a refused join, a bad setting
                raise CliError(f"error: {e}") from None
            ca = (server.data_dir / "pki" / "ca.crt").read_bytes()
            cluster = ClusterConfig(server=plane.url, ca_data=ca, token=plane.api.token)
            local = plane.api.local if plane.options.local_transport else None
            # Handed over to the other managers when this node is demoted: the agent carries on.
            handover = state["handover"] = HandoverTransport(
                LocalTransport(local) if local is not None else HttpTransport(plane.url, ssl_context(cluster)))
            client = state["client"] = Client(cluster, transport=handover)
            loopback = plane.config.host in ("127.0.0.1", "localhost")
            driver = make_driver(node.runtime, config.runtime_dir, "127.0.0.1" if loopback else plane.config.host)
            agent = state["agent"] = Agent(client, config, driver, node_ip="127.0.0.1" if loopback else None)
            await agent.start()
            state["id"] = await _node_id(client, config.node_name)
            _write_state(node.data_dir, "manager", config.node_name, plane.url)
            tasks.append(asyncio.create_task(follow_role(agent, cluster), name="swarm-demotion"))

        async def follow_role(agent: Agent, cluster: ClusterConfig) -> None:
            others = await wait_for_demotion(agent.client, config.node_name, plane.url)
            transport = FailoverTransport(others, ssl_context(cluster))
            state["handover"].hand_over(transport)
            config.role = "worker"  # should the agent register again
            await plane.stop()
            state["demoted"] = True  # not before: a stop that cut this one short stops the plane
            member = state.get("etcd")
            if isinstance(member, EtcdMember):
                await leave_etcd(member)
                del state["etcd"]
            _write_state(node.data_dir, "worker", config.node_name, others[0])
            click.echo("This node was demoted: its manager stopped.")
            sys.stdout.flush()
            promoted = state["promoted"] = PromotedManager(
                agent.client, PromotionSettings(node.data_dir, config.node_name, server.listen,
                                                options.lease_duration, _etcd_address(server.listen, embedded)),
                _role_changed(node.data_dir, config.node_name, others[0]))
            tasks.append(asyncio.create_task(follow_managers(agent.client, transport, _announce_manager),
                                             name="swarm-managers"))
            tasks.append(asyncio.create_task(promoted.run(), name="swarm-promotion"))

        async def stop() -> None:
            for t in list(tasks):
                await cancel_and_wait(t)
            promoted = state.get("promoted")
            if isinstance(promoted, PromotedManager):
                await promoted.stop()
            agent = state.get("agent")
            if isinstance(agent, Agent):
                await agent.stop()
            client = state.get("client")
            if isinstance(client, Client):
                await client.close()
            if not state.get("demoted"):
                await plane.stop()
            member = state.get("etcd")
            if isinstance(member, EtcdMember):
                await leave_etcd(member)
            _forget(node.data_dir)

        await run_until_signal(start, stop, lambda: banner(str(state.get("id", "")), plane.api.cluster, plane.url))

    asyncio.run(main())


def _etcd_address(listen: str, embedded: Embedded | None) -> MemberAddress:
    """Where this machine's etcd member listens should it be promoted again."""
    return embedded.address if embedded is not None else MemberAddress(listen.rsplit(":", 1)[0].strip("[]"))


def _role_changed(data_dir: Path, node_name: str, worker_url: str) -> Callable[[str, str], None]:
    """What a node whose process runs a manager only while promoted says of each change."""

    def changed(role: str, url: str) -> None:
        _write_state(data_dir, role, node_name, url or worker_url)
        click.echo(f"This node was promoted: it runs a manager on {url.split('://', 1)[-1]}." if url else
                   "This node was demoted: its manager stopped.")
        sys.stdout.flush()

    return changed


def _announce_manager(url: str) -> None:
    click.echo(f"Manager {url.split('://', 1)[-1]} joined the swarm: this node moves to it when needed.")
    sys.stdout.flush()


def run_worker(node: NodeOptions, info: JoinInfo, token: str, listen: str, lease_duration: float,
               etcd: MemberAddress) -> None:
    """This machine's agent, on every manager ``info`` names, and a manager of its own on
    ``listen`` while its node has the manager role (:mod:`bosun.cli.swarm_promotion`)."""
    config = node.agent_config("worker")
    mount_cgroups()
    cluster = ClusterConfig(server=info.servers[0], ca_data=info.ca, token=token)

    async def main() -> None:
        transport = FailoverTransport(info.servers, ssl_context(cluster))
        client = Client(cluster, transport=transport)
        ip = node_ip_towards(info.servers[0])
        agent = Agent(client, config, make_driver(node.runtime, config.runtime_dir, ip), node_ip=ip)
        tasks: list[asyncio.Task[None]] = []

        promoted = PromotedManager(agent.client, PromotionSettings(node.data_dir, config.node_name, listen,
                                                                   lease_duration, etcd),
                                   _role_changed(node.data_dir, config.node_name, info.url))

        async def start() -> None:
            await agent.start()
            await _node_id(agent.client, config.node_name)
            tasks.append(asyncio.create_task(follow_managers(agent.client, transport, _announce_manager),
                                             name="swarm-managers"))
            tasks.append(asyncio.create_task(promoted.run(), name="swarm-promotion"))
            _write_state(node.data_dir, "worker", config.node_name, info.url)

        async def stop() -> None:
            for t in tasks:
                await cancel_and_wait(t)
            await promoted.stop()
            await agent.stop()
            await client.close()
            _forget(node.data_dir)

        await run_until_signal(start, stop, lambda: "This node joined a swarm as a worker.")

    asyncio.run(main())

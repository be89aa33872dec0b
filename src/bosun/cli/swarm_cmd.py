"""``bosun swarm``: Docker's words for making and joining a cluster.

``init`` starts the first manager, ``join`` makes this machine a worker or a manager by the
token it is given, ``join-token`` shows or rotates the tokens, ``leave`` stops this machine's
part. Managers share one identity (CA, admin token, encryption key: see
:mod:`bosun.security.cluster`), so one kubeconfig works against any of them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import click

from bosun.agent.hostinfo import node_ip_towards
from bosun.api.server import ServerConfig
from bosun.api.swarm_endpoints import TOKENS_PATH
from bosun.cli.agent_cmd import check_runtime, parse_labels
from bosun.cli.common import CliState, fail, pass_state, run
from bosun.cli.swarm_run import Embedded, NodeOptions, read_state, refuse_if_member, run_manager, run_worker
from bosun.client.rest import Client
from bosun.controlplane import ControlPlaneOptions
from bosun.security.cluster import ClusterIdentity
from bosun.store.etcdnode import DEFAULT_CLIENT_PORT, DEFAULT_PEER_PORT, SCHEME, MemberAddress
from bosun.swarm.joining import JoinError, discover

DEFAULT_PORT = 6443
DEFAULT_DATA_DIR = Path("/var/lib/bosun")


@click.group("swarm")
def swarm() -> None:
    """Make a cluster (a swarm), join it, and leave it."""


def _etcd_ports(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, int]:
    client, sep, peer = value.partition(":")
    if not (sep and client.isdigit() and peer.isdigit() and 0 < int(client) < 65536 and 0 < int(peer) < 65536):
        raise click.BadParameter(f"{value!r}: want CLIENT:PEER, two port numbers")
    return int(client), int(peer)


def _member(listen: str, ports: tuple[int, int]) -> MemberAddress:
    return MemberAddress(listen.rsplit(":", 1)[0].strip("[]"), *ports)


def node_options(f: Any) -> Any:
    """How this machine runs as a node, whatever its role."""
    for option in reversed([
        click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_DATA_DIR,
                     show_default=True, help="Where this node keeps its state, certificates and kubeconfig."),
        click.option("--name", default="", help="Node name (default: the host name)."),
        click.option("--labels", default="", help="Node labels, k=v,k2=v2."),
        click.option("--runtime", type=click.Choice(["auto", "oci", "process", "docker"]), default="auto",
                     show_default=True),
        click.option("--agent-port", type=int, default=10250, show_default=True, help="HTTPS port of the node agent."),
        click.option("--node-network/--no-node-network", default=True, show_default=True,
                     help="Program this machine's network (service proxy, DNS); off for a second node "
                          "on a machine whose network another node already programs."),
        click.option("--etcd-ports", default=f"{DEFAULT_CLIENT_PORT}:{DEFAULT_PEER_PORT}", show_default=True,
                     metavar="CLIENT:PEER", callback=_etcd_ports,
                     help="Ports of this manager's etcd member, in a swarm made with --store etcd."),
    ]):
        f = option(f)
    return f


lease_option = click.option(
    "--leader-elect-lease-duration", "lease_duration", type=click.FloatRange(min=2.0), default=15.0,
    show_default=True,
    help="Seconds a manager holds the controllers' Lease without renewing it: how soon another takes over.")


def _node(data_dir: Path, name: str, labels: str, runtime: str, agent_port: int, node_network: bool) -> NodeOptions:
    check_runtime(runtime)
    return NodeOptions(data_dir=data_dir, name=name, runtime=runtime, agent_port=agent_port,
                       node_network=node_network, labels=parse_labels(labels))


def listen_address(advertise: str) -> str:
    """``--advertise-addr`` ADDR[:PORT] -> ADDR:PORT (6443 unless given); the default address
    is the one this machine reaches the outside world from."""
    if not advertise:
        return f"{node_ip_towards('https://192.0.2.1')}:{DEFAULT_PORT}"
    host, sep, port = advertise.rpartition(":")
    if sep and host and port.isdigit() and not host.endswith(":"):
        return advertise
    if ":" in advertise and not advertise.startswith("["):
        return f"[{advertise}]:{DEFAULT_PORT}"  # a bare IPv6 address
    return f"{advertise}:{DEFAULT_PORT}"


def join_line(token: str, url: str) -> str:
    return f"    bosun swarm join --token {token} {url.split('://', 1)[-1]}"


@swarm.command("init")
@click.option("--advertise-addr", default="", help="ADDR[:PORT] other nodes reach this manager on (port 6443).")
@click.option("--store", "store_url", default="", help="sqlite (default); etcd: an etcd member beside each "
              "manager (run from Debian's etcd-server; three managers survive the loss of one); or "
              "etcd://host:port[,...], an etcd cluster of your own. More managers can join only a swarm on etcd.")
@node_options
@lease_option
@click.option("--log-level", default="warning", type=click.Choice(["debug", "info", "warning", "error"]))
def init(advertise_addr: str, store_url: str, data_dir: Path, name: str, labels: str, runtime: str, agent_port: int,
         node_network: bool, etcd_ports: tuple[int, int], lease_duration: float, log_level: str) -> None:
    """Start a swarm: this machine becomes its first manager (runs until stopped)."""
    _logging(log_level)
    refuse_if_member(data_dir)
    listen = listen_address(advertise_addr)
    node = _node(data_dir, name, labels, runtime, agent_port, node_network)
    embedded = Embedded(_member(listen, etcd_ports)) if store_url == "etcd" else None
    config = ServerConfig(data_dir=data_dir, listen=listen, store_url="" if embedded else store_url, swarm=True)

    def banner(node_id: str, cluster: ClusterIdentity | None, url: str) -> str:
        assert cluster is not None, "a swarm manager always has the cluster's identity (ServerConfig.swarm)"
        return (f"Swarm initialized: current node ({node_id}) is now a manager.\n\n"
                "To add a worker to this swarm, run the following command:\n\n"
                f"{join_line(cluster.tokens()['worker'], url)}\n\n"
                "To add a manager to this swarm, run 'bosun swarm join-token manager' and follow the instructions.\n")

    run_manager(node, config, ControlPlaneOptions(advertise_url=f"https://{listen}", lease_duration=lease_duration),
                banner, embedded)


@swarm.command("join")
@click.option("--token", required=True, help="The worker or the manager token (bosun swarm join-token).")
@click.option("--advertise-addr", default="", help="ADDR[:PORT] (port 6443) other nodes reach this node's manager "
              "on: at once when joining as a manager, once promoted (bosun node promote) when joining as a worker.")
@click.option("--store", "store_url", default="", help="A manager's store [default: the swarm's, as the manager "
              "asked says].")
@node_options
@lease_option
@click.option("--log-level", default="warning", type=click.Choice(["debug", "info", "warning", "error"]))
@click.argument("address", metavar="HOST:PORT")
def join(token: str, advertise_addr: str, store_url: str, data_dir: Path, name: str, labels: str, runtime: str,
         agent_port: int, node_network: bool, etcd_ports: tuple[int, int], lease_duration: float, log_level: str,
         address: str) -> None:
    """Join a swarm as a worker or a manager, as the token says (runs until stopped)."""
    _logging(log_level)
    refuse_if_member(data_dir)
    try:
        info = asyncio.run(discover(address, token))
    except JoinError as e:
        fail(str(e))
    node = _node(data_dir, name, labels, runtime, agent_port, node_network)
    listen = listen_address(advertise_addr)
    if info.role == "worker":
        run_worker(node, info, token.strip(), listen, lease_duration, _member(listen, etcd_ports))
        return
    embedded = None
    if not store_url and info.store.startswith(SCHEME) and info.etcd_ca is not None:
        embedded = Embedded(_member(listen, etcd_ports), (info.store, info.etcd_ca))
    config = ServerConfig(data_dir=data_dir, listen=listen, store_url=store_url or info.store, join_token=token.strip(),
                          swarm=True)
    run_manager(node, config, ControlPlaneOptions(advertise_url=f"https://{listen}", lease_duration=lease_duration),
                lambda node_id, cluster, url: "This node joined a swarm as a manager.", embedded)


@swarm.command("join-token")
@click.option("-q", "--quiet", is_flag=True, help="Only the token.")
@click.option("--rotate", is_flag=True, help="Replace the token: the old one joins nothing from now on.")
@click.argument("role", type=click.Choice(["worker", "manager"]))
@pass_state
def join_token(state: CliState, quiet: bool, rotate: bool, role: str) -> None:
    """Show (or rotate) the token that joins a worker or a manager."""

    async def go(client: Client) -> dict[str, Any]:
        if rotate:
            return await client.request("POST", TOKENS_PATH, body={"rotate": role})
        return await client.request("GET", TOKENS_PATH)

    tokens = run(state, go)
    token = str(tokens[role])
    if quiet:
        click.echo(token)
        return
    if rotate:
        click.echo(f"Successfully rotated {role} join token.\n")
    click.echo(f"To add a {role} to this swarm, run the following command:\n\n{join_line(token, state.server)}\n")


@swarm.command("leave")
@click.option("-f", "--force", is_flag=True, help="Leave even as a manager.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_DATA_DIR,
              show_default=True, help="The node's data directory (as given to init or join).")
def leave(force: bool, data_dir: Path) -> None:
    """Stop this machine's part in the swarm (its tasks stop; the others carry on)."""
    member = read_state(data_dir)
    if member is None:
        fail("Error response from daemon: This node is not part of a swarm")
    if member.get("role") == "manager" and not force:
        fail("Error response from daemon: You are attempting to leave the swarm on a node that is participating "
             "as a manager. Removing the last manager erases all current state of the swarm. Use `--force` to "
             "ignore this message.")
    pid = int(member["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while read_state(data_dir) is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    if read_state(data_dir) is not None:
        fail(f"error: the node's process ({pid}) did not stop within 60s")
    click.echo("Node left the swarm.")


def _logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")

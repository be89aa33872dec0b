"""``bosun up``: a whole cluster in one process (control plane + one local node).

Ctrl-C stops the node's pods too (drain), so nothing is left running behind.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path
from typing import Any

import click

from bosun.agent.agent import Agent
from bosun.agent.config import AgentConfig
from bosun.agent.runtime.select import make_driver
from bosun.aio import tune_gc
from bosun.api.server import ServerConfig
from bosun.cli.agent_cmd import check_runtime, mount_cgroups, parse_labels, unsafe_sysctls, unsafe_sysctls_option
from bosun.cli.daemon import check_port_free, lock_data_dir, run_until_signal
from bosun.cli.network_opts import (
    check_ingress_ports,
    ingress_port_options,
    network_config,
    network_options,
    pod_cidr_option,
)
from bosun.cli.node_cleanup import cleanup_node
from bosun.client.kubeconfig import ClusterConfig
from bosun.client.rest import Client
from bosun.client.transport import LocalTransport
from bosun.controlplane import ControlPlane, ControlPlaneOptions


@click.command("up")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("/var/lib/bosun"),
              show_default=True)
@click.option("--listen", default="127.0.0.1:6443", show_default=True, help="ADDR:PORT of the API server.")
@click.option("--name", default="", help="Node name (default: the host name).")
@click.option("--labels", default="", help="Extra node labels, k=v,k2=v2.")
@click.option("--runtime", type=click.Choice(["auto", "oci", "process", "docker"]), default="auto", show_default=True)
@click.option("--agent-port", type=int, default=10250, show_default=True, help="HTTPS port of the node agent.")
@pod_cidr_option
@network_options
@unsafe_sysctls_option
@ingress_port_options
@click.option("--reset", is_flag=True,
              help="Remove every container, sandbox, mount, cgroup and network rule the node left (after a "
              "crash or a SIGKILL), then exit without starting; the cluster's objects are kept.")
@click.option("--log-level", default="warning", type=click.Choice(["debug", "info", "warning", "error"]))
def up(data_dir: Path, listen: str, name: str, labels: str, runtime: str, agent_port: int, pod_cidr: str,
       allowed_unsafe_sysctls: tuple[str, ...], ingress_http_port: int, ingress_https_port: int, reset: bool,
       log_level: str, **network: Any) -> None:
    """Start a one-node cluster: API server, scheduler, controllers and a node agent."""
    settings = network_config(network)
    check_runtime(runtime)
    check_ingress_ports(ingress_http_port, ingress_https_port)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = AgentConfig(node_name=(name or socket.gethostname()).lower(), data_dir=data_dir / "agent",
                         labels=parse_labels(labels), role="control-plane", listen_host="127.0.0.1",
                         listen_port=agent_port, drain_on_stop=True, pod_cidr=pod_cidr,
                         allowed_unsafe_sysctls=unsafe_sysctls(allowed_unsafe_sysctls),
                         ingress_http_port=ingress_http_port, ingress_https_port=ingress_https_port)
    lock_data_dir(data_dir, "bosun up")
    lock_data_dir(config.data_dir, "bosun up")  # its node's: `bosun agent --cleanup` there waits too
    if reset:
        mount_cgroups()
        cleanup_node(config, "127.0.0.1")
        return
    host, _, port = listen.rpartition(":")
    if port.isdigit():
        check_port_free(host.strip("[]"), int(port), "--listen")
    check_port_free(config.listen_host, agent_port, "--agent-port")
    mount_cgroups()

    async def main() -> None:
        plane = ControlPlane(ServerConfig(data_dir=data_dir, listen=listen, network=settings),
                             ControlPlaneOptions(node_name=config.node_name))
        state: dict[str, object] = {}

        async def start() -> None:
            await plane.start()
            ca = (data_dir / "pki" / "ca.crt").read_bytes()
            # The node agent lives in the server's process and event loop: it reaches the API
            # in-process (same authentication, authorization and admission), as the
            # control-plane components do, instead of through TLS to itself.
            local = plane.api.local if plane.options.local_transport else None
            client = Client(ClusterConfig(server=plane.url, ca_data=ca, token=plane.api.token),
                            transport=LocalTransport(local) if local is not None else None)
            state["client"] = client
            ip = "127.0.0.1" if plane.config.host in ("127.0.0.1", "localhost") else ""
            driver = make_driver(runtime, config.runtime_dir, ip or plane.config.host)
            node = Agent(client, config, driver, node_ip=ip or None)
            state["agent"] = node
            await node.start()
            tune_gc()

        async def stop() -> None:
            node = state.get("agent")
            if isinstance(node, Agent):
                await node.stop(report=lambda msg: click.echo(msg, err=True))
            client = state.get("client")
            if isinstance(client, Client):
                await client.close()
            await plane.stop()

        def hurry() -> list[str]:
            node = state.get("agent")
            return node.hurry() if isinstance(node, Agent) else []

        await run_until_signal(start, stop, lambda: f"bosun is up: API server at {plane.url}, node {config.node_name}\n"
                               f"  kubectl --kubeconfig {plane.kubeconfig} get nodes", hurry=hurry)

    asyncio.run(main())

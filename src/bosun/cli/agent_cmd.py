"""``bosun agent``: join this machine to a cluster as a node and run its pods."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import click

from bosun.agent import podsecurity
from bosun.agent.agent import Agent
from bosun.agent.cgroup_mounts import ensure_cgroup_mounts
from bosun.agent.config import AgentConfig
from bosun.agent.hostinfo import node_ip_towards
from bosun.agent.runtime.base import DriverError
from bosun.agent.runtime.select import make_driver, preflight
from bosun.cli.daemon import check_port_free, lock_data_dir, run_until_signal
from bosun.cli.network_opts import check_ingress_ports, ingress_port_options, pod_cidr_option
from bosun.cli.node_cleanup import cleanup_node
from bosun.client.failover import FailoverTransport, parse_servers
from bosun.client.kubeconfig import ClusterConfig, load_kubeconfig
from bosun.client.rest import Client, ssl_context
from bosun.hollow import nodes as hollow_nodes
from bosun.network.dns.forward import upstream_address


def parse_labels(text: str) -> dict[str, str]:
    """``--labels`` of ``bosun agent`` and ``bosun up``: spelled as for hollow nodes."""
    try:
        return hollow_nodes.parse_labels(text)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--labels") from None


def _upstream(text: str) -> str:
    try:
        upstream_address(text)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--upstream-dns") from None
    return text


def unsafe_sysctls(values: tuple[str, ...]) -> list[str]:
    """``--allowed-unsafe-sysctls``: comma separated and repeatable, as kubelet's flag."""
    patterns = [p.strip() for v in values for p in v.split(",") if p.strip()]
    try:
        podsecurity.check_unsafe_allowlist(patterns)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--allowed-unsafe-sysctls") from None
    return patterns


unsafe_sysctls_option = click.option(
    "--allowed-unsafe-sysctls", "allowed_unsafe_sysctls", multiple=True, metavar="PATTERNS",
    help="Sysctls beyond the safe set that pods may set, e.g. 'kernel.msg*,net.core.somaxconn' "
         "(namespaced ones only; a pod asking for another is rejected with SysctlForbidden).")


def mount_cgroups() -> None:
    """Before any thread starts: under `ip netns exec` the cgroup hierarchy is hidden by a fresh
    /sys and the OCI runtime would refuse every container (see agent/cgroup_mounts.py)."""
    try:
        ensure_cgroup_mounts()
    except OSError as e:
        raise click.ClickException(f"cannot mount the cgroup hierarchy on /sys/fs/cgroup: {e}") from None


def agent_client(cluster: ClusterConfig, servers: list[str]) -> Client:
    """A client to the one server, or to whichever of several answers."""
    if len(servers) < 2:
        return Client(cluster)
    return Client(cluster, transport=FailoverTransport(servers, ssl_context(cluster)))


def check_runtime(runtime: str) -> None:
    """``--runtime docker`` with no engine: one line, before anything starts or registers."""
    try:
        preflight(runtime)
    except DriverError as e:
        raise click.ClickException(e.message) from None


@click.command("agent")
@click.option("--server", default="", help="API server URL, e.g. https://10.0.0.1:6443; several, comma-separated, "
              "for a cluster with several managers (the agent moves to another when one goes away).")
@click.option("--token", default="", help="Join token (bosun token create) or another bearer token.")
@click.option("--kubeconfig", "kubeconfig", default="", help="Use this kubeconfig instead of --server/--token.")
@click.option("--ca-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The cluster CA (pki/ca.crt of the server); without it the server is not verified.")
@click.option("--name", default="", help="Node name (default: the host name).")
@click.option("--labels", default="", help="Extra node labels, k=v,k2=v2.")
@click.option("--role", default="worker", show_default=True, help="node-role.kubernetes.io/<role> label.")
@click.option("--runtime", type=click.Choice(["auto", "oci", "process", "docker"]), default="auto", show_default=True)
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("/var/lib/bosun-agent"),
              show_default=True)
@click.option("--node-ip", default="", help="Address of this node (default: the one that reaches the server).")
@click.option("--port", type=int, default=10250, show_default=True, help="HTTPS port for logs.")
@pod_cidr_option
@click.option("--cgroup-parent", default="bosun", show_default=True,
              help="Cgroup under which this node's pods live (one per node when several share a machine).")
@click.option("--ipam-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where pod address leases are kept [default: /var/lib/cni/networks, shared by the "
                   "nodes of this machine; give each node its own when they run in network namespaces].")
@click.option("--upstream-dns", multiple=True, metavar="ADDR[:PORT]",
              help="Where cluster DNS sends names outside the cluster (repeatable; default: the "
              "nameservers of /etc/resolv.conf).")
@click.option("--node-network/--no-node-network", default=True, show_default=True,
              help="Program this node's network (service proxy, cluster DNS). Off for a second agent in "
              "a network namespace another agent (or `bosun up`) already programs: one per namespace.")
@unsafe_sysctls_option
@ingress_port_options
@click.option("--cleanup", is_flag=True,
              help="Remove every container, sandbox, mount, cgroup and network rule this node left on the "
              "machine (after a crash or a SIGKILL), then exit without starting.")
@click.option("--log-level", default="warning", type=click.Choice(["debug", "info", "warning", "error"]))
def agent(server: str, token: str, kubeconfig: str, ca_file: Path | None, name: str, labels: str, role: str,
          runtime: str, data_dir: Path, node_ip: str, port: int, pod_cidr: str, cgroup_parent: str,
          ipam_dir: Path | None, upstream_dns: tuple[str, ...], node_network: bool,
          allowed_unsafe_sysctls: tuple[str, ...], ingress_http_port: int, ingress_https_port: int, cleanup: bool,
          log_level: str) -> None:
    """Run a node: register it, heartbeat, and run the pods the scheduler binds to it."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not cgroup_parent.strip("/") or ".." in cgroup_parent.split("/"):
        raise click.BadParameter(f"{cgroup_parent!r} is not a cgroup path below the root", param_hint="--cgroup-parent")
    oci_options: dict[str, str] = {"cgroup_parent": cgroup_parent.strip("/")}
    if ipam_dir is not None:
        oci_options["ipam_dir"] = str(ipam_dir.absolute())
    check_runtime(runtime)
    if cleanup:
        lock_data_dir(data_dir, "bosun agent")
        mount_cgroups()
        cleanup_node(AgentConfig(node_name=name or socket.gethostname(), data_dir=data_dir),
                     node_ip or "127.0.0.1", **oci_options)
        return
    check_ingress_ports(ingress_http_port, ingress_https_port)
    servers: list[str] = []
    if kubeconfig:
        cluster = load_kubeconfig(kubeconfig)
    elif server and token:
        ca = ca_file.read_bytes() if ca_file else None
        servers = parse_servers(server)
        cluster = ClusterConfig(server=servers[0], ca_data=ca, insecure=ca is None, token=token)
    else:
        raise click.UsageError("give --server and --token, or --kubeconfig")
    config = AgentConfig(node_name=(name or socket.gethostname()).lower(), data_dir=data_dir,
                         labels=parse_labels(labels), role=role, node_ip=node_ip, listen_port=port,
                         pod_cidr=pod_cidr, upstream_dns=[_upstream(u) for u in upstream_dns],
                         node_network=node_network, allowed_unsafe_sysctls=unsafe_sysctls(allowed_unsafe_sysctls),
                         ingress_http_port=ingress_http_port, ingress_https_port=ingress_https_port)
    lock_data_dir(data_dir, "bosun agent")
    check_port_free(config.listen_host, port, "--port")
    mount_cgroups()

    async def main() -> None:
        client = agent_client(cluster, servers)
        ip = node_ip or node_ip_towards(cluster.server)
        node = Agent(client, config, make_driver(runtime, config.runtime_dir, ip, **oci_options), node_ip=ip)

        async def stop() -> None:
            await node.stop(report=lambda msg: click.echo(msg, err=True))
            await client.close()

        await run_until_signal(node.start, stop, lambda: f"bosun agent: node {config.node_name} "
                               f"({node.driver.name} runtime) joined {cluster.server}", hurry=node.hurry)

    asyncio.run(main())

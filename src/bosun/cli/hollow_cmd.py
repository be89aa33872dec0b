"""``bosun hollow``: run N simulated nodes against a cluster until stopped (like Kubemark/KWOK).

The process is the nodes' kubelet: when it is killed they stop heartbeating and the node
lifecycle controller marks them NotReady, as it would real nodes that die.
"""

from __future__ import annotations

import asyncio
import logging

import click

from bosun.aio import tune_gc
from bosun.cli.common import CliState, pass_state
from bosun.cli.daemon import run_until_signal
from bosun.client.kubeconfig import load_kubeconfig
from bosun.client.rest import Client
from bosun.hollow import HollowCluster, parse_labels, parse_taints
from bosun.hollow.nodes import MAX_NODES


async def _serve(cluster: HollowCluster, client: Client) -> None:
    async def start() -> None:
        await cluster.start()
        tune_gc()  # thousands of nodes' objects: full collections took ~180 ms each, 16 per run

    async def stop() -> None:
        await cluster.stop()
        await client.close()

    def registered() -> str:
        names = cluster.names
        return (f"hollow: {len(names)} nodes registered ({names[0]}..{names[-1]}), "
                f"heartbeat every {cluster.heartbeat.period:g}s")

    await run_until_signal(start, stop, registered)
    s = cluster.stats()
    click.echo(f"hollow: stopped; {s['pods_started']} pods started, {s['pods_completed']} completed, "
               f"{s['pods_deleted']} deleted, {s['lease_renewals']} lease renewals "
               f"({s['lease_failures']} failed)")


@click.command("hollow")
@click.option("--kubeconfig", "kubeconfig_path", default=None,
              help="Kubeconfig of the cluster to join (default: the global --kubeconfig / $KUBECONFIG).")
@click.option("--nodes", type=click.IntRange(1, MAX_NODES), required=True, help="How many nodes to simulate.")
@click.option("--cpu", default="4", show_default=True, help="CPU capacity of each node.")
@click.option("--memory", default="16Gi", show_default=True, help="Memory capacity of each node.")
@click.option("--pods", type=click.IntRange(1), default=110, show_default=True, help="Pod capacity of each node.")
@click.option("--ephemeral-storage", default="100Gi", show_default=True, help="Ephemeral storage per node.")
@click.option("--zones", type=click.IntRange(1), default=3, show_default=True,
              help="Nodes are spread over zone-0..zone-(N-1) (topology.kubernetes.io/zone).")
@click.option("--labels", default="", help="Extra node labels: k=v,k2=v2.")
@click.option("--taints", default="", help="Node taints: k=v:NoSchedule,k2:NoExecute.")
@click.option("--name-prefix", default="hollow", show_default=True, help="Nodes are PREFIX-0..PREFIX-(N-1).")
@click.option("--pod-runtime", type=click.FloatRange(0), default=1.0, show_default=True,
              help="Seconds before a pod whose restartPolicy is not Always succeeds.")
@click.option("--heartbeat", type=click.FloatRange(0, min_open=True), default=2.0, show_default=True,
              help="Seconds between Lease renewals of each node (spread over the period).")
@click.option("--status-concurrency", type=click.IntRange(1), default=128, show_default=True,
              help="Pod status writes in flight at most.")
@click.option("--log-level", default="warning", type=click.Choice(["debug", "info", "warning", "error"]))
@pass_state
def hollow(state: CliState, kubeconfig_path: str | None, nodes: int, cpu: str, memory: str, pods: int,
           ephemeral_storage: str, zones: int, labels: str, taints: str, name_prefix: str, pod_runtime: float,
           heartbeat: float, status_concurrency: int, log_level: str) -> None:
    """Run simulated nodes (no containers) that register, heartbeat and run pods, until stopped."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        extra_labels, node_taints = parse_labels(labels), parse_taints(taints)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    config = load_kubeconfig(kubeconfig_path or state.kubeconfig, state.context)
    state.server = config.server
    client = Client(config)
    try:
        cluster = HollowCluster(
            client, nodes, cpu=cpu, memory=memory, pods=pods, ephemeral_storage=ephemeral_storage, zones=zones,
            name_prefix=name_prefix, pod_runtime=pod_runtime, heartbeat=heartbeat,
            status_concurrency=status_concurrency, labels=extra_labels, taints=node_taints,
        )
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    try:
        import uvloop

        uvloop.run(_serve(cluster, client))
    except ImportError:  # pragma: no cover - uvloop is optional
        asyncio.run(_serve(cluster, client))

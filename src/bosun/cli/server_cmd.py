"""``bosun server``: the control plane (API server; scheduler and controllers join it later)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import click

from bosun.aio import tune_gc
from bosun.api.server import ServerConfig
from bosun.api.workers.pool import WorkerStartError
from bosun.cli.common import fail
from bosun.cli.monitoring_opts import apply_monitoring, monitoring_options
from bosun.cli.network_opts import network_config, network_options
from bosun.controlplane import STRATEGIES, ControlPlane, ControlPlaneOptions
from bosun.security.bootstrap import BadToken, parse_token
from bosun.store.etcdnode import SCHEME
from bosun.swarm.joining import JoinError, discover


def _run(config: ServerConfig, options: ControlPlaneOptions) -> None:
    async def main() -> None:
        server = ControlPlane(config, options)
        try:
            await server.start()
        except OSError as exc:
            click.echo(f"error: cannot serve on {config.listen}: {exc.strerror or exc}", err=True)
            sys.exit(1)
        except (ValueError, WorkerStartError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        click.echo(f"bosun API server serving at {server.url} (store: {config.store_url or 'sqlite'})")
        click.echo(f"kubeconfig: {server.kubeconfig}")
        click.echo(f"  kubectl --kubeconfig {server.kubeconfig} get ns")
        tune_gc()
        click.echo("ready", nl=True)
        sys.stdout.flush()
        await stop.wait()
        await server.stop()

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:  # pragma: no cover - uvloop is optional
        asyncio.run(main())


@click.command("server")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("/var/lib/bosun"),
              show_default=True, help="Where the store, certificates and kubeconfig live.")
@click.option("--listen", default="127.0.0.1:6443", show_default=True, help="ADDR:PORT to serve HTTPS on.")
@click.option("--store", "store_url", default="", help="sqlite (default), sqlite:///path.db or etcd://host:port[,...]")
@click.option("--scheduling-strategy", default="spread", show_default=True,
              help="Default placement: spread (fewest pods), binpack (fill nodes) or random.")
@click.option("--controllers", default="*", show_default=True,
              help="Controllers to run: '*' for all, or a comma list; '-name' disables one.")
@click.option("--scheduler/--no-scheduler", default=True, show_default=True,
              help="Run the scheduler in this server (off: pods wait for another scheduler).")
@click.option("--node-monitor-grace-period", type=float, default=10.0, show_default=True,
              help="Seconds without a node heartbeat before the node is NotReady/Unknown.")
@click.option("--pod-eviction-timeout", type=float, default=10.0, show_default=True,
              help="Seconds an unreachable node's pods are kept before they are evicted.")
@click.option("--local-transport/--no-local-transport", default=True, show_default=True,
              help="Components in this server reach the API in-process (off: over HTTPS, as remote ones do).")
@click.option("--encryption-config", "--encryption-provider-config", "encryption_config",
              type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="EncryptionConfiguration file (kube-apiserver's format) for encryption at rest "
                   "[default: DATA_DIR/pki/encryption.yaml, made at the first start]. Servers sharing "
                   "a store need the same file.")
@click.option("--leader-elect-lease-duration", "lease_duration", type=click.FloatRange(min=2.0), default=15.0,
              show_default=True,
              help="Seconds a server holds the controllers' Lease without renewing it: how soon another "
                   "server on the same store takes over.")
@click.option("--join", "join_address", default="", metavar="HOST:PORT",
              help="Join the cluster this server serves (with --token): its store and identity.")
@click.option("--token", "join_token", default="", help="The manager join token (bosun swarm join-token manager): "
              "serve the identity of the cluster already in the store (CA, tokens, encryption key).")
@network_options
@monitoring_options
@click.option("--api-workers", type=click.IntRange(min=1), default=len(os.sched_getaffinity(0)),
              show_default="the number of cores",
              help="API processes sharing the listening socket and the store: TLS, HTTP, decoding, validation and "
                   "encoding on every core (this process also runs the store, scheduler and controllers).")
@click.option("--max-requests-inflight", type=click.IntRange(min=1), default=400, show_default=True,
              help="With --max-mutating-requests-inflight, the server's concurrency limit that API Priority and "
                   "Fairness shares out among the priority levels (split over the API processes).")
@click.option("--max-mutating-requests-inflight", type=click.IntRange(min=1), default=200, show_default=True,
              help="Added to --max-requests-inflight for the server's concurrency limit.")
@click.option("--enable-priority-and-fairness", "priority_and_fairness", type=bool, default=True, show_default=True,
              help="Limit requests by the FlowSchemas and PriorityLevelConfigurations (false: at most "
                   "--max-requests-inflight read-only and --max-mutating-requests-inflight other requests at once).")
@click.option("--log-level", default="warning", type=click.Choice(["debug", "info", "warning", "error"]))
def server(data_dir: Path, listen: str, store_url: str, scheduling_strategy: str, controllers: str,
           scheduler: bool, node_monitor_grace_period: float, pod_eviction_timeout: float, local_transport: bool,
           encryption_config: Path | None, lease_duration: float, join_address: str, join_token: str, api_workers: int,
           max_requests_inflight: int, max_mutating_requests_inflight: int, priority_and_fairness: bool,
           log_level: str, **flags: Any) -> None:
    """Run the control plane: Kubernetes API over HTTPS (SQLite or etcd), scheduler, controllers."""
    options = ControlPlaneOptions()
    history = apply_monitoring(flags, options)
    settings = network_config(flags)
    if join_address and not join_token:
        raise click.UsageError("--join needs --token")
    if join_token:
        try:
            parse_token(join_token)
        except BadToken as e:
            fail(f"error: {e}")
    if join_address:
        store_url = store_url or _joined_store(join_address, join_token)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if ":" not in listen or not listen.rsplit(":", 1)[1].isdigit():
        click.echo(f"error: --listen must be ADDR:PORT, got {listen!r}", err=True)
        sys.exit(2)
    if scheduling_strategy not in STRATEGIES:
        click.echo(f"error: unknown --scheduling-strategy {scheduling_strategy!r}: "
                   f"choose one of {', '.join(STRATEGIES)}", err=True)
        sys.exit(2)
    options.scheduling_strategy = scheduling_strategy
    options.controllers = [c.strip() for c in controllers.split(",") if c.strip()] or ["*"]
    options.scheduler = scheduler
    options.node_monitor_grace_period = node_monitor_grace_period
    options.pod_eviction_timeout = pod_eviction_timeout
    options.lease_duration = lease_duration
    if not local_transport:
        options.local_transport = False
    _run(ServerConfig(data_dir=data_dir, listen=listen, store_url=store_url, encryption_config=encryption_config,
                      network=settings, join_token=join_token.strip(), history=history, api_workers=api_workers,
                      max_requests_inflight=max_requests_inflight,
                      max_mutating_requests_inflight=max_mutating_requests_inflight,
                      priority_and_fairness=priority_and_fairness),
         options)


def _joined_store(address: str, token: str) -> str:
    """The store of the cluster a manager at ``address`` serves, if ``token`` joins a manager."""
    try:
        info = asyncio.run(discover(address, token))
    except JoinError as e:
        fail(str(e))
    if info.role != "manager":
        fail("error: this is a worker join token: a manager joins with the manager token "
             "(bosun swarm join-token manager)")
    if info.store.startswith(SCHEME):
        fail("error: this swarm keeps its state in etcd members run by its managers: join it with "
             "bosun swarm join --token TOKEN HOST:PORT, which runs this machine's member too")
    return info.store

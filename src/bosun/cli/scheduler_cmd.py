"""``bosun scheduler``: the scheduler in a process of its own, as kube-scheduler runs apart from
kube-apiserver.

In `bosun server` the scheduler shares one thread with the store, the watch cache and a share
of the clients' connections; on its own it has its own core's worth of time, and reaches the
API over HTTPS like any client (its bindings are then ordinary requests that an API worker may
serve). Run the server with ``--no-scheduler``, or two schedulers would place the same pods.
Several ``bosun scheduler`` processes may run: they elect one leader through the
``bosun-scheduler`` Lease in kube-system (kube-scheduler's is ``kube-scheduler``), and only
the leader schedules.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid

import click

from bosun.aio import cancel_and_wait, tune_gc
from bosun.cli.common import CliState, pass_state
from bosun.cli.daemon import run_until_signal
from bosun.client.kubeconfig import load_kubeconfig
from bosun.client.leader import LeaderElector
from bosun.client.rest import Client
from bosun.client.shared import SharedInformers
from bosun.component import ComponentContext, ControlPlaneOptions
from bosun.scheduler import run as run_scheduler
from bosun.scheduler.strategies import NAMES as STRATEGIES

log = logging.getLogger(__name__)
LEASE_NAME = "bosun-scheduler"
LEASE_NAMESPACE = "kube-system"


async def _lead(client: Client, options: ControlPlaneOptions) -> None:
    """Schedule while leading: informers start afresh each time, as the server's do."""
    ctx = ComponentContext(client, SharedInformers(client), options)
    try:
        await run_scheduler(ctx)
    finally:
        await ctx.informers.stop()
        await ctx.close()


async def _elect(elector: LeaderElector, client: Client, options: ControlPlaneOptions) -> None:
    while True:
        try:
            await elector.run(lambda: _lead(client, options), lambda: None)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("leader election failed; retrying")
        await asyncio.sleep(1.0)


@click.command("scheduler")
@click.option("--kubeconfig", "kubeconfig_path", default=None,
              help="Kubeconfig of the cluster to schedule (default: the global --kubeconfig / $KUBECONFIG).")
@click.option("--scheduling-strategy", type=click.Choice(STRATEGIES), default="spread", show_default=True,
              help="Default placement: spread (fewest pods), binpack (fill nodes) or random.")
@click.option("--leader-elect-lease-duration", "lease_duration", type=click.FloatRange(min=2.0), default=15.0,
              show_default=True, help="Seconds the leader holds the bosun-scheduler Lease without renewing it.")
@click.option("--log-level", default="warning", type=click.Choice(["debug", "info", "warning", "error"]))
@pass_state
def scheduler(state: CliState, kubeconfig_path: str | None, scheduling_strategy: str, lease_duration: float,
              log_level: str) -> None:
    """Run the scheduler apart from the API server (start the server with --no-scheduler)."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_kubeconfig(kubeconfig_path or state.kubeconfig, state.context)
    state.server = config.server
    options = ControlPlaneOptions(scheduling_strategy=scheduling_strategy, controllers=[],
                                  lease_duration=lease_duration)
    identity = f"{socket.gethostname()}_{uuid.uuid4().hex[:10]}"

    async def main() -> None:
        client = Client(config)
        elector = LeaderElector(client, LEASE_NAME, LEASE_NAMESPACE, identity=identity,
                                lease_duration=lease_duration, renew_deadline=lease_duration * 2 / 3,
                                retry_period=max(0.5, lease_duration / 10))
        task: asyncio.Task[None] | None = None

        async def start() -> None:
            nonlocal task
            tune_gc()  # informers of thousands of pods and nodes: as the server's
            task = asyncio.create_task(_elect(elector, client, options), name="scheduler-election")

        async def stop() -> None:
            # One cancel, then time to stop scheduling and give the Lease up (bounded by the
            # renew deadline): cancelling again would cut the release short, and a successor
            # would wait out the whole lease.
            if task is not None:
                task.cancel()
                await asyncio.wait({task}, timeout=lease_duration + 5)
            with contextlib.suppress(Exception):
                await cancel_and_wait(task)
            await client.close()

        await run_until_signal(start, stop, lambda: (
            f"scheduler: {identity} schedules while it holds Lease {LEASE_NAMESPACE}/{LEASE_NAME} "
            f"(API {config.server})"))

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:  # pragma: no cover - uvloop is optional
        asyncio.run(main())

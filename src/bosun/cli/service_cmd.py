"""``bosun service``: Docker's service verbs over Deployments, DaemonSets and Jobs. A service
made here goes through the compose translation (flags become a compose service), so it is
the same objects a stack would make, in the current namespace."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from bosun.api.kinds import by_plural, must_by_plural
from bosun.cli.common import CliState, fail, global_options, pass_state, run
from bosun.cli.printers import render
from bosun.cli.service_flags import common_options, fill_groups
from bosun.cli.service_logs import logs
from bosun.cli.service_update import rollback, update
from bosun.cli.swarm_lookup import must_find
from bosun.cli.swarm_views import SERVICE_HEADER, filters_of, service_rows, task_rows
from bosun.client.rest import Client
from bosun.compose.errors import ComposeError
from bosun.compose.load import from_model
from bosun.compose.translate import Translation, translate
from bosun.swarm.apply import NotServed, apply_object
from bosun.swarm.converge import converge
from bosun.swarm.flags import ServiceFlags, to_model
from bosun.swarm.kinds import NotScalable
from bosun.swarm.pretty import pretty
from bosun.swarm.services import ServiceRef, find_service, list_services
from bosun.swarm.tasks import TASK_HEADER
from bosun.swarm.update_status import DEFAULT_MONITOR
from bosun.swarm.updating import started
from bosun.swarm.used_ports import port_conflicts

NODES = must_by_plural("", "v1", "nodes")
CONVERGE_WITHIN = 120.0


@click.group("service")
def service() -> None:
    """Manage services (Deployments, DaemonSets and Jobs in Docker's words)."""


def warn(message: str) -> None:
    click.echo(f"Warning: {message}", err=True)


def _flags(name: str, image: str, args: tuple[str, ...], o: dict[str, Any]) -> ServiceFlags:
    f = ServiceFlags(name=name, image=image, args=list(args), replicas=o["replicas"], mode=o["mode"] or "replicated",
                     publish=list(o["publish"]), env=list(o["env"]), env_file=list(o["env_file"]),
                     labels=list(o["label"]), container_labels=list(o["container_label"]),
                     constraints=list(o["constraint"]), placement_prefs=list(o["placement_pref"]),
                     max_per_node=o["replicas_max_per_node"], max_concurrent=o["max_concurrent"],
                     mounts=list(o["mount"]), secrets=list(o["secret"]),
                     configs=list(o["config"]), networks=list(o["network"]), no_healthcheck=o["no_healthcheck"],
                     endpoint_mode=o["endpoint_mode"] or "", hostname=o["hostname"] or "", user=o["user"] or "",
                     workdir=o["workdir"] or "", entrypoint=o["entrypoint"] or "",
                     stop_grace_period=o["stop_grace_period"] or "",
                     ingress_host=o.get("ingress_host") or "", ingress_path=o.get("ingress_path") or "")
    fill_groups(f, o)
    return f


def _translate(f: ServiceFlags, namespace: str, nodes: int) -> Translation:
    try:
        project = from_model(to_model(f), Path.cwd(), os.environ, "service create")
        return translate(project, namespace, nodes, standalone=True)
    except ComposeError as e:
        fail(f"error: {e}")


async def write(client: Client, t: Translation) -> None:
    for obj in t.all_objects():
        try:
            await apply_object(client, obj)
        except NotServed as e:
            warn(f"{e} is not served by this cluster; not written")


@service.command("create", context_settings={"allow_interspersed_args": False})
@click.option("--name", default="", help="Service name (default: from the image).")
@click.option("-p", "--publish", multiple=True, help="Publish a port: 8080:80 or published=8080,target=80.")
@click.option("-e", "--env", multiple=True, help="Set an environment variable (K=V).")
@click.option("--env-file", multiple=True, help="Read environment variables from a file.")
@click.option("-l", "--label", multiple=True, help="Service label (K=V).")
@click.option("--container-label", multiple=True, help="Container label (K=V).")
@click.option("--constraint", multiple=True, help="Placement constraint, e.g. node.labels.zone==a.")
@click.option("--placement-pref", multiple=True, help="Placement preference, e.g. spread=node.labels.zone.")
@click.option("--mount", multiple=True, help="type=volume|bind|tmpfs,src=,dst=,readonly")
@click.option("--secret", multiple=True, help="source=NAME[,target=PATH]")
@click.option("--config", multiple=True, help="source=NAME[,target=PATH]")
@click.option("--network", multiple=True, help="Network to attach to.")
@click.option("--ingress-host", default="", help="Route HTTP for this host name to the service (an Ingress; "
              "the service's first published or exposed port).")
@click.option("--ingress-path", default="", help="Only this path prefix of --ingress-host (default: /).")
@common_options
@click.argument("image")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@global_options
@pass_state
def create(state: CliState, image: str, args: tuple[str, ...], name: str, detach: bool, **o: Any) -> None:
    """Create a new service."""
    if not name:
        name = image.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0]
    if o["replicas"] is not None and o["mode"] in ("global", "global-job"):
        fail("error: replicas can only be used with replicated or replicated-job mode")

    async def go(client: Client) -> None:
        nodes, _ = await client.list_all(NODES)
        ns = state.default_namespace
        t = _translate(_flags(name, image, args, o), ns, len(nodes))
        if await find_service(client, name, ns) is not None:
            fail(f"Error response from daemon: name conflicts with an existing object: service {name} already exists")
        for conflict in await port_conflicts(client, t.all_objects()):
            fail(f"Error response from daemon: {conflict}")
        for line in t.warnings.lines():
            warn(line)
        since = started()
        await write(client, t)
        svc = await must_find(client, state, name)
        click.echo(svc.id)
        if detach:
            return
        outcome = await converge(client, svc, click.echo, CONVERGE_WITHIN, since, DEFAULT_MONITOR)
        if not outcome.converged:
            fail(f"error: service {name}: {outcome.failure or f'not converged within {CONVERGE_WITHIN:g}s'}")

    run(state, go)


@service.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only IDs.")
@pass_state
def ls(state: CliState, quiet: bool) -> None:
    """List services (of every namespace)."""

    async def go(client: Client) -> list[list[str]]:
        return await service_rows(client, await list_services(client, None))

    rows = run(state, go)
    click.echo("\n".join(r[0] for r in rows) if quiet else render([SERVICE_HEADER, *rows]))


@service.command("ps")
@click.option("--no-trunc", is_flag=True, help="Do not truncate IDs and errors.")
@click.option("-f", "--filter", "filters", multiple=True, help="id=, name=, node=, desired-state=running|shutdown")
@click.argument("names", nargs=-1, required=True)
@global_options
@pass_state
def ps(state: CliState, no_trunc: bool, filters: tuple[str, ...], names: tuple[str, ...]) -> None:
    """List the tasks of one or more services."""
    wanted = filters_of(filters)

    async def go(client: Client) -> list[list[str]]:
        return await task_rows(client, [await must_find(client, state, n) for n in names], no_trunc, wanted)

    click.echo(render([TASK_HEADER, *run(state, go)]))


@service.command("inspect")
@click.option("--pretty", "as_text", is_flag=True, help="Human-readable, as docker service inspect --pretty.")
@click.argument("names", nargs=-1, required=True)
@global_options
@pass_state
def inspect(state: CliState, as_text: bool, names: tuple[str, ...]) -> None:
    """Show a service's objects."""

    async def go(client: Client) -> list[ServiceRef]:
        return [await must_find(client, state, n) for n in names]

    found = run(state, go)
    if as_text:
        click.echo("\n\n".join(pretty(s) for s in found))
    else:
        click.echo(json.dumps([s.obj for s in found], indent=4))


@service.command("scale")
@click.argument("pairs", nargs=-1, required=True)
@click.option("-d", "--detach", is_flag=True, help="Return at once instead of waiting to converge.")
@global_options
@pass_state
def scale(state: CliState, pairs: tuple[str, ...], detach: bool) -> None:
    """Scale services: web=5 api=2."""
    wanted: list[tuple[str, int]] = []
    for pair in pairs:
        name, eq, count = pair.partition("=")
        if not eq or not count.isdigit():
            fail(f"error: invalid scale specifier '{pair}': want SERVICE=REPLICAS with REPLICAS 0 or more")
        wanted.append((name, int(count)))

    async def go(client: Client) -> bool:
        ok = True
        for name, n in wanted:
            svc = await must_find(client, state, name)
            try:
                patch = svc.kind.scale_patch(svc.obj, n)
            except NotScalable as e:
                click.echo(f"{name}: {e}", err=True)
                ok = False
                continue
            await client.patch(svc.kind.resource, svc.name, patch, svc.namespace)
            click.echo(f"{name} scaled to {n}")
            if not detach and not (await converge(client, svc, click.echo, CONVERGE_WITHIN)).converged:
                click.echo(f"{name}: did not converge within {CONVERGE_WITHIN:g}s", err=True)
                ok = False
        return ok

    if not run(state, go):
        raise SystemExit(1)


@service.command("rm")
@click.argument("names", nargs=-1, required=True)
@global_options
@pass_state
def rm(state: CliState, names: tuple[str, ...]) -> None:
    """Remove services (their workload, Services, network policy and Ingress)."""

    async def go(client: Client) -> None:
        for name in names:
            svc = await must_find(client, state, name)
            await remove_service(client, svc)
            click.echo(name)

    run(state, go)


async def remove_service(client: Client, svc: ServiceRef) -> None:
    await client.delete(svc.kind.resource, svc.name, svc.namespace, propagation_policy="Background")
    services = must_by_plural("", "v1", "services")
    items, _ = await client.list_all(services, svc.namespace, label_selector=svc.selector())
    for obj in items:
        await client.delete(services, obj["metadata"]["name"], svc.namespace)
    for plural in ("networkpolicies", "ingresses"):
        kind = by_plural("networking.k8s.io", "v1", plural)
        if kind is None:
            continue
        items, _ = await client.list_all(kind, svc.namespace, label_selector=svc.selector())
        for obj in items:
            await client.delete(kind, obj["metadata"]["name"], svc.namespace)


service.add_command(update)
service.add_command(rollback)
service.add_command(logs)

"""``bosun stack``: deploy a compose file as a stack (a namespace of ordinary objects), list
stacks, their services and tasks, and remove them, in Docker's words and columns."""

from __future__ import annotations

import os
from pathlib import Path

import click

from bosun.api.kinds import must_by_plural
from bosun.cli.common import CliState, fail, pass_state, run
from bosun.cli.printers import render, to_yaml
from bosun.cli.swarm_views import filters_of, service_rows, task_rows
from bosun.client.rest import Client
from bosun.compose.errors import ComposeError
from bosun.compose.load import load
from bosun.compose.translate import Translation, translate
from bosun.compose.translate.context import STACK_LABEL, is_dns_name
from bosun.swarm import stack as stacks
from bosun.swarm.conditions import DependencyFailed
from bosun.swarm.services import list_services
from bosun.swarm.tasks import TASK_HEADER
from bosun.swarm.updating import UpdateFailed
from bosun.swarm.used_ports import PortInUse

NODE_RESOURCE = must_by_plural("", "v1", "nodes")


def _stack_name(name: str) -> str:
    if not is_dns_name(name):
        fail(f"error: invalid stack name {name!r}: lower-case letters, digits and '-', starting with a letter")
    return name


def _translate(files: tuple[str, ...], name: str, nodes: int) -> Translation:
    try:
        return translate(load(list(files), os.environ), name, nodes)
    except ComposeError as e:
        fail(f"error: {e}")


@click.group("stack")
def stack() -> None:
    """Manage stacks: compose files deployed as namespaces of services."""


@stack.command("deploy")
@click.option("-c", "--compose-file", "files", multiple=True, required=True,
              type=click.Path(dir_okay=False),
              help="Compose file, or - for standard input (repeat to merge overrides).")
@click.option("--prune", is_flag=True, help="Remove services (and their objects) the file no longer has.")
@click.option("--dry-run", is_flag=True, help="Print the objects as YAML, with the warnings; write nothing.")
@click.option("--timeout", type=float, default=300.0, show_default=True,
              help="Seconds to wait for each depends_on condition (and each service, with --detach=false).")
@click.option("-d", "--detach", type=bool, default=True, show_default=True,
              help="false: wait for each changed service to converge; a failed update pauses or rolls back "
                   "as its update_config says and the deploy fails naming it.")
@click.argument("name")
@pass_state
def deploy(state: CliState, files: tuple[str, ...], prune: bool, dry_run: bool, timeout: float, detach: bool,
           name: str) -> None:
    """Deploy a new stack or update an existing one."""
    name = _stack_name(name)
    for f in files:
        if f != "-" and not Path(f).is_file():
            fail(f"error: open {f}: no such file or directory")
    if dry_run:
        t = _translate(files, name, 1)
        for line in t.warnings.lines():
            click.echo(f"Warning: {line}", err=True)
        click.echo("---\n".join(to_yaml(o) for o in t.all_objects()), nl=False)
        return

    async def go(client: Client) -> None:
        nodes, _ = await client.list_all(NODE_RESOURCE)
        t = _translate(files, name, len(nodes))
        for line in t.warnings.lines():
            click.echo(f"Warning: {line}", err=True)
        try:
            await stacks.deploy(client, t, stacks.DeployOptions(prune=prune, wait_timeout=timeout, detach=detach),
                                click.echo, lambda m: click.echo(f"Warning: {m}", err=True))
        except (TimeoutError, DependencyFailed, UpdateFailed) as e:
            fail(f"error: {e}")
        except (PortInUse, stacks.NotAStack) as e:
            fail(f"Error response from daemon: {e}")

    run(state, go)


@stack.command("ls")
@pass_state
def ls(state: CliState) -> None:
    """List stacks."""
    names = run(state, stacks.stack_names)
    click.echo(render([["NAME", "SERVICES"], *([n, str(c)] for n, c in sorted(names.items()))]))


@stack.command("services")
@click.argument("name")
@pass_state
def services(state: CliState, name: str) -> None:
    """List the services of a stack."""

    async def go(client: Client) -> list[list[str]]:
        found = await list_services(client, name, f"{STACK_LABEL}={name}")
        if not found:
            fail(f"Nothing found in stack: {name}")
        return await service_rows(client, found)

    click.echo(render([["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"], *run(state, go)]))


@stack.command("ps")
@click.option("--no-trunc", is_flag=True, help="Do not truncate IDs and errors.")
@click.option("-f", "--filter", "filters", multiple=True, help="id=, name=, node=, desired-state=running|shutdown")
@click.argument("name")
@pass_state
def ps(state: CliState, no_trunc: bool, filters: tuple[str, ...], name: str) -> None:
    """List the tasks of a stack."""
    wanted = filters_of(filters)

    async def go(client: Client) -> list[list[str]]:
        found = await list_services(client, name, f"{STACK_LABEL}={name}")
        if not found:
            fail(f"Nothing found in stack: {name}")
        return await task_rows(client, found, no_trunc, wanted)

    click.echo(render([TASK_HEADER, *run(state, go)]))


@stack.command("rm")
@click.argument("names", nargs=-1, required=True)
@pass_state
def rm(state: CliState, names: tuple[str, ...]) -> None:
    """Remove one or more stacks."""

    async def go(client: Client) -> list[str]:
        missing = []
        for name in names:
            if not await stacks.remove(client, name, click.echo):
                missing.append(name)
        return missing

    missing = run(state, go)
    if missing:
        fail("; ".join(f"Nothing found in stack: {n}" for n in missing))

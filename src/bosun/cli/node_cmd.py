"""``bosun node``: the cluster's nodes in ``docker node``'s columns and verbs."""

from __future__ import annotations

import json

import click

from bosun.cli.common import CliState, fail, pass_state, run
from bosun.cli.printers import render
from bosun.client.rest import Client
from bosun.swarm import nodes as model
from bosun.swarm.nodes import AVAILABILITIES, NodeView
from bosun.swarm.services import list_services
from bosun.swarm.services import tasks as service_tasks
from bosun.swarm.tasks import TASK_HEADER, as_tasks

HEADER = ["ID", "HOSTNAME", "STATUS", "AVAILABILITY", "MANAGER STATUS", "ENGINE VERSION"]


@click.group("node")
def node() -> None:
    """Manage the cluster's nodes."""


async def must_find(client: Client, ref: str) -> NodeView:
    found = await model.find_node(client, ref)
    if found is None:
        fail(f"Error response from daemon: node {ref} not found")
    return found


@node.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only IDs.")
@pass_state
def ls(state: CliState, quiet: bool) -> None:
    """List nodes (the current one is marked *)."""
    views = run(state, model.list_nodes)
    if quiet:
        click.echo("\n".join(v.id for v in views))
        return
    rows = [[f"{v.id} *" if v.is_self else v.id, v.hostname, v.status, v.availability, v.manager_status, v.engine]
            for v in views]
    click.echo(render([HEADER, *rows]))


def _pretty(v: NodeView) -> str:
    st = v.obj.get("status") or {}
    info = st.get("nodeInfo") or {}
    addresses = [a.get("address") for a in st.get("addresses") or [] if a.get("type") == "InternalIP"]
    cap = st.get("capacity") or {}
    lines = [f"ID:\t\t\t{v.id}", f"Hostname:\t\t{v.hostname}",
             f"Joined at:\t\t{v.obj['metadata'].get('creationTimestamp', '')}",
             "Status:", f" State:\t\t\t{v.status}", f" Availability:\t\t{v.availability}",
             f" Address:\t\t{addresses[0] if addresses else ''}"]
    if v.manager:
        lines += ["Manager Status:", f" Raft Status:\t\t{v.manager_status}",
                  f" Leader:\t\t{v.manager_status == 'Leader'}"]
    lines += ["Platform:", f" Operating System:\t{info.get('operatingSystem', '')}",
              f" Architecture:\t\t{info.get('architecture', '')}",
              "Resources:", f" CPUs:\t\t\t{cap.get('cpu', '')}", f" Memory:\t\t{cap.get('memory', '')}",
              f"Engine Version:\t\t{v.engine}"]
    labels = v.obj["metadata"].get("labels") or {}
    if labels:
        lines.append("Labels:")
        lines.extend(f" - {k}={val}" for k, val in sorted(labels.items()))
    return "\n".join(lines)


@node.command("inspect")
@click.option("--pretty", "as_text", is_flag=True, help="Human-readable, as docker node inspect --pretty.")
@click.argument("refs", nargs=-1, required=True)
@pass_state
def inspect(state: CliState, as_text: bool, refs: tuple[str, ...]) -> None:
    """Show nodes in detail."""

    async def go(client: Client) -> list[NodeView]:
        return [await must_find(client, r) for r in refs]

    views = run(state, go)
    click.echo("\n\n".join(_pretty(v) for v in views) if as_text else json.dumps([v.obj for v in views], indent=4))


@node.command("update")
@click.option("--label-add", multiple=True, help="Add or change a node label (key=value).")
@click.option("--label-rm", multiple=True, help="Remove a node label.")
@click.option("--availability", type=click.Choice(AVAILABILITIES), default=None,
              help="active, pause (no new tasks) or drain (tasks move elsewhere).")
@click.option("--role", type=click.Choice(["worker", "manager"]), default=None,
              help="The node's role, as node promote and node demote give it.")
@click.argument("ref")
@pass_state
def update(state: CliState, label_add: tuple[str, ...], label_rm: tuple[str, ...], availability: str | None,
           role: str | None, ref: str) -> None:
    """Update a node's labels, availability or role."""
    add: dict[str, str] = {}
    for item in label_add:
        key, _, value = item.partition("=")
        if not key:
            fail(f"error: invalid label {item!r}: want key=value")
        add[key] = value

    async def go(client: Client) -> None:
        if role:  # first: a refused demotion changes nothing else
            await (_promote if role == "manager" else _demote)(client, ref)
        v = await must_find(client, ref)
        if add or label_rm:
            await model.update_labels(client, v, add, list(label_rm))
        if availability:
            await model.set_availability(client, v, availability)

    run(state, go)
    click.echo(ref)


@node.command("ps")
@click.option("--no-trunc", is_flag=True, help="Do not truncate IDs and errors.")
@click.argument("refs", nargs=-1)
@pass_state
def ps(state: CliState, no_trunc: bool, refs: tuple[str, ...]) -> None:
    """List the tasks running on nodes (default: the current node)."""

    async def go(client: Client) -> list[list[str]]:
        views = [await must_find(client, r) for r in refs] if refs else \
            [v for v in await model.list_nodes(client) if v.is_self]
        if not views:
            fail("error: this machine is not a node of the cluster: name the node")
        names = {v.name for v in views}
        rows: list[list[str]] = []
        for svc in await list_services(client, None):
            for task in as_tasks(svc.display, await service_tasks(client, svc)):
                if task.node in names:
                    rows.append(task.row(no_trunc))
        return rows

    click.echo(render([TASK_HEADER, *run(state, go)]))


@node.command("rm")
@click.option("-f", "--force", is_flag=True, help="Remove a node that is not down.")
@click.argument("refs", nargs=-1, required=True)
@pass_state
def rm(state: CliState, force: bool, refs: tuple[str, ...]) -> None:
    """Remove nodes from the cluster."""

    async def go(client: Client) -> None:
        for ref in refs:
            v = await must_find(client, ref)
            if v.status == "Ready" and not force:
                fail(f"Error response from daemon: node {ref} is not down and can't be removed (use --force)")
            await client.delete(model.NODES, v.name)
            click.echo(ref)

    run(state, go)


async def _promote(client: Client, ref: str) -> str:
    v = await must_find(client, ref)
    if v.manager:
        return f"Node {ref} is already a manager."
    await model.set_manager(client, v, True)
    return f"Node {ref} promoted to a manager in the swarm."


async def _demote(client: Client, ref: str) -> str:
    """Refused, as Docker refuses it, for the last manager and when the reachable managers
    left would be fewer than a quorum of the managers left."""
    views = await model.list_nodes(client)
    v = await must_find(client, ref)
    if not v.manager:
        return f"Node {ref} is already a worker."
    managers = [other for other in views if other.manager]
    if len(managers) <= 1:
        fail("Error response from daemon: attempting to demote the last manager of the swarm")
    if not model.can_remove_manager(managers, v):
        fail("Error response from daemon: can't remove member from the raft: this would result in a loss of quorum")
    await model.set_manager(client, v, False)
    return f"Manager {ref} demoted in the swarm."


@node.command("promote")
@click.argument("refs", nargs=-1, required=True)
@pass_state
def promote(state: CliState, refs: tuple[str, ...]) -> None:
    """Give nodes the manager role: node.role==manager places tasks there, and a worker that
    joined with `bosun swarm join` starts a manager of its own (on its --advertise-addr);
    another node shows as a manager, Unreachable until one runs there."""

    async def go(client: Client) -> None:
        for ref in refs:
            click.echo(await _promote(client, ref))

    run(state, go)


@node.command("demote")
@click.argument("refs", nargs=-1, required=True)
@pass_state
def demote(state: CliState, refs: tuple[str, ...]) -> None:
    """Take the manager role away from nodes: the node stops its manager (and its etcd member,
    in a swarm on its managers' own) and carries on as a worker. Refused for the last manager,
    and when it would leave the managers without a quorum."""

    async def go(client: Client) -> None:
        for ref in refs:
            click.echo(await _demote(client, ref))

    run(state, go)

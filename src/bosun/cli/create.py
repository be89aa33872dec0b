"""``bosun create``: imperative creation of the simplest objects (namespaces)."""

from __future__ import annotations

import click

from bosun.api.kinds import by_kind
from bosun.cli.common import CliState, global_options, pass_state, run
from bosun.client.rest import Client


@click.group("create")
def create_cmd() -> None:
    """Create an object from arguments."""


@create_cmd.command("namespace")
@click.argument("name")
@click.option("--dry-run", type=click.Choice(["none", "server"]), default="none")
@global_options
@pass_state
def create_namespace(state: CliState, name: str, dry_run: str) -> None:
    """Create a namespace: `bosun create namespace team-a`."""
    res = by_kind("v1", "Namespace")
    assert res is not None
    obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}

    async def go(client: Client) -> None:
        await client.create(res, obj, dry_run=dry_run == "server")

    run(state, go)
    click.echo(f"namespace/{name} created" + (" (server dry run)" if dry_run == "server" else ""))


create_cmd.add_command(create_namespace, "ns")

"""``bosun apply``: declarative create-or-update, interoperable with ``kubectl apply``."""

from __future__ import annotations

from typing import Any

import click

from bosun.cli.common import (
    CliError,
    CliState,
    api_error_line,
    global_options,
    kind_group,
    pass_state,
    plural_group,
    resource_of,
    run,
)
from bosun.cli.manifests import Manifest, load
from bosun.cli.threeway import read_last_applied, three_way_patch, with_last_applied
from bosun.client.rest import ApiError, Client


def check_namespace(state: CliState, obj: dict[str, Any], namespaced: bool) -> str | None:
    """The namespace an object goes to; a file's namespace must agree with an explicit -n."""
    if not namespaced:
        return None
    meta = obj.setdefault("metadata", {})
    ns = meta.get("namespace")
    if ns and state.namespace_given and ns != state.namespace:
        raise CliError(
            f'error: the namespace from the provided object "{ns}" does not match the namespace '
            f'"{state.namespace}". You must pass \'--namespace={ns}\' to perform this operation.'
        )
    ns = str(ns or state.default_namespace)
    meta["namespace"] = ns  # kubectl records the namespace in last-applied too
    return ns


async def apply_one(client: Client, state: CliState, m: Manifest, dry_run: bool) -> str:
    res = resource_of(m.obj, m.source)
    name = (m.obj.get("metadata") or {}).get("name")
    if not name:
        raise CliError(f'error: error validating "{m.source}": metadata.name is required')
    ns = check_namespace(state, m.obj, res.namespaced)
    suffix = " (server dry run)" if dry_run else ""
    label = f"{kind_group(res)}/{name}"
    desired = with_last_applied(m.obj)
    try:
        live = await client.get(res, name, ns)
    except ApiError as e:
        if not e.not_found:
            raise
        await client.create(res, desired, ns, dry_run=dry_run)
        return f"{label} created{suffix}"
    original = read_last_applied(live)
    if not original:
        click.echo(
            f"Warning: resource {plural_group(res)}/{name} is missing the "
            f"kubectl.kubernetes.io/last-applied-configuration annotation which is required by bosun "
            f"apply. The missing annotation will be patched automatically.", err=True,
        )
    patch = three_way_patch(original, desired, live)
    if not patch:
        return f"{label} unchanged{suffix}"
    await client.patch(res, name, patch, ns, patch_type="merge", dry_run=dry_run)
    return f"{label} configured{suffix}"


@click.command("apply")
@click.option("-f", "--filename", "filenames", multiple=True, required=True,
              help="File, directory or - (stdin) with the objects to apply.")
@click.option("-R", "--recursive", is_flag=True, help="Read directories recursively.")
@click.option("--dry-run", type=click.Choice(["none", "server"]), default="none",
              help="server: let the server validate and default, store nothing.")
@global_options
@pass_state
def apply_cmd(state: CliState, filenames: tuple[str, ...], recursive: bool, dry_run: str) -> None:
    """Create or update objects from manifests (client-side apply, like kubectl)."""
    manifests = load(filenames, recursive)
    for m in manifests:
        resource_of(m.obj, m.source)  # refuse unknown kinds before changing anything

    async def go(client: Client) -> bool:
        ok = True
        for m in manifests:
            try:
                click.echo(await apply_one(client, state, m, dry_run == "server"))
            except ApiError as e:
                ok = False
                click.echo(api_error_line(e), err=True)
        return ok

    if not run(state, go):
        raise SystemExit(1)

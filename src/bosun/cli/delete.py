"""``bosun delete``: by kind and name, by selector, or everything named in manifests."""

from __future__ import annotations

import asyncio
import time

import click

from bosun.api.kinds import Kind
from bosun.cli.apply import check_namespace
from bosun.cli.common import (
    CliState,
    api_error_line,
    fail,
    global_options,
    kind_group,
    pass_state,
    resource_of,
    run,
)
from bosun.cli.get import parse_targets
from bosun.cli.manifests import load
from bosun.client.rest import ApiError, Client

_CASCADE = {"background": "Background", "foreground": "Foreground", "orphan": "Orphan"}


async def _wait_gone(client: Client, res: Kind, name: str, ns: str | None, uid: str | None,
                     deadline: float) -> bool:
    """Deletion may be deferred (grace period, finalizers); kubectl waits for it by default."""
    while time.monotonic() < deadline:
        try:
            live = await client.get(res, name, ns)
        except ApiError as e:
            if e.not_found:
                return True
            raise
        if uid and (live.get("metadata") or {}).get("uid") != uid:
            return True  # replaced by a new object of the same name
        await asyncio.sleep(0.2)
    return False


@click.command("delete")
@click.argument("args", nargs=-1)
@click.option("-f", "--filename", "filenames", multiple=True, help="Delete the objects in these manifests.")
@click.option("-R", "--recursive", is_flag=True, help="Read directories given with -f recursively.")
@click.option("-l", "--selector", default=None, help="Delete every object matching this label selector.")
@click.option("--all", "delete_all", is_flag=True, help="Delete every object of the kind in the namespace.")
@click.option("--cascade", type=click.Choice(sorted(_CASCADE)), default="background",
              help="What happens to dependents: deleted in the background, first (foreground), or kept.")
@click.option("--grace-period", type=int, default=-1, help="Seconds for pods to stop; -1 = the object's own.")
@click.option("--now", is_flag=True, help="Same as --grace-period=1.")
@click.option("--force", is_flag=True, help="With --grace-period=0, delete immediately.")
@click.option("--ignore-not-found", is_flag=True, help="Treat a missing object as deleted.")
@click.option("--wait", type=click.BOOL, default=True, is_flag=False, flag_value=True,
              help="Wait until the objects are gone (--wait=false to return at once).")
@click.option("--timeout", type=float, default=0, help="Seconds to wait; 0 = 60s plus the grace period.")
@click.option("--dry-run", type=click.Choice(["none", "server"]), default="none")
@global_options
@pass_state
def delete_cmd(
    state: CliState,
    args: tuple[str, ...],
    filenames: tuple[str, ...],
    recursive: bool,
    selector: str | None,
    delete_all: bool,
    cascade: str,
    grace_period: int,
    now: bool,
    force: bool,
    ignore_not_found: bool,
    wait: bool,
    timeout: float,
    dry_run: str,
) -> None:
    """Delete objects: `bosun delete pod web`, `bosun delete -f app.yaml`, `bosun delete deploy -l app=x`."""
    targets: list[tuple[Kind, str, str | None]] = []
    if filenames:
        if args:
            fail("error: there is no need to specify a resource type as a separate argument when passing "
                 "arguments in resource/name form")
        for m in load(filenames, recursive, verb="delete"):
            res = resource_of(m.obj, m.source)
            name = str((m.obj.get("metadata") or {}).get("name") or "")
            targets.append((res, name, check_namespace(state, m.obj, res.namespaced)))
        by_listing: list[Kind] = []
    else:
        requests = parse_targets(args)
        named = [(r, n) for r, names in requests for n in names]
        unnamed = [r for r, names in requests if not names]
        if unnamed and not (selector or delete_all):
            fail("error: resource(s) were provided, but no name was specified")
        if named and (selector or delete_all):
            fail("error: name cannot be provided when a selector or --all is specified")
        for r, n in named:
            targets.append((r, n, state.default_namespace if r.namespaced else None))
        by_listing = unnamed
    if now:
        grace_period = 1
    if grace_period == 0 and not force:
        grace_period = 1  # as kubectl: 0 without --force means "as fast as possible", not immediate
    server_dry = dry_run == "server"
    suffix = " (server dry run)" if server_dry else ""
    verb = "deleted"
    if force and grace_period == 0:
        verb = "force deleted"
        click.echo("Warning: Immediate deletion does not wait for confirmation that the running resource "
                   "has been terminated. The resource may continue to run on the cluster indefinitely.",
                   err=True)

    async def go(client: Client) -> bool:
        for res in by_listing:
            ns = state.default_namespace if res.namespaced else None
            items, _ = await client.list_all(res, ns, label_selector=selector)
            targets.extend((res, str(o["metadata"]["name"]), ns) for o in items)
        if by_listing and not targets:
            namespaced = any(r.namespaced for r in by_listing)
            where = f" in {state.default_namespace} namespace." if namespaced else ""
            click.echo("No resources found" + where, err=True)
        ok = True
        pending: list[tuple[Kind, str, str | None, str | None]] = []
        for res, name, ns in targets:
            try:
                answer = await client.delete(
                    res, name, ns, propagation_policy=_CASCADE[cascade],
                    grace_period_seconds=grace_period if grace_period >= 0 else None, dry_run=server_dry,
                )
            except ApiError as e:
                if not (e.not_found and ignore_not_found):
                    ok = False
                    click.echo(api_error_line(e), err=True)
                continue
            click.echo(f'{kind_group(res)} "{name}" {verb}{suffix}')
            uid = (answer.get("details") or {}).get("uid") or (answer.get("metadata") or {}).get("uid")
            pending.append((res, name, ns, uid))
        if wait and not server_dry:
            deadline = time.monotonic() + (timeout or 60 + max(grace_period, 30))
            for res, name, ns, uid in pending:
                if not await _wait_gone(client, res, name, ns, uid, deadline):
                    ok = False
                    click.echo(f'error: timed out waiting for {kind_group(res)} "{name}" to be deleted',
                               err=True)
        return ok

    if not run(state, go):
        raise SystemExit(1)

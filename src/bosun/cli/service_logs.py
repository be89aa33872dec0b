"""``service logs``: every task's log, each line prefixed with its task as Docker prefixes it
(``web.1.3f2a9c1b7e4d@node1    | ...``); with ``-f`` all tasks are followed at once. A task
whose node cannot be reached is reported on stderr and the others go on."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import click

from bosun.api.kinds import must_by_plural
from bosun.cli.common import CliState, global_options, pass_state, run
from bosun.cli.swarm_lookup import must_find
from bosun.client.rest import TRANSPORT_ERRORS, ApiError, Client, resource_path
from bosun.compose.errors import ComposeError
from bosun.compose.units import whole_seconds
from bosun.swarm.services import tasks
from bosun.swarm.tasks import as_tasks

PODS = must_by_plural("", "v1", "pods")


def _since(since: str) -> dict[str, Any]:
    """``--since``: an RFC 3339 time, or how long ago as Docker takes it (``42m``, ``1h30m``,
    ``90s``; a bare number is seconds)."""
    if "T" in since:
        try:
            datetime.fromisoformat(since.replace("Z", "+00:00"))
        except ValueError:
            raise click.BadParameter(f"{since!r} is not an RFC 3339 time", param_hint="--since") from None
        return {"sinceTime": since}
    try:
        return {"sinceSeconds": whole_seconds(int(since) if since.isdigit() else since, "--since", minimum=1)}
    except ComposeError:
        raise click.BadParameter(f"{since!r} is not a duration (42m, 1h30m) nor an RFC 3339 time",
                                 param_hint="--since") from None


def _params(tail: str, since: str | None, timestamps: bool, follow: bool) -> dict[str, Any]:
    params: dict[str, Any] = {"timestamps": timestamps or None, "follow": follow or None}
    if tail != "all":
        params["tailLines"] = int(tail)
    if since:
        params.update(_since(since))
    return params


@click.command("logs")
@click.option("-f", "--follow", is_flag=True, help="Follow log output.")
@click.option("--tail", default="all", help="Number of lines from the end of each task's log.")
@click.option("--since", default=None,
              help="Only lines since a time (RFC 3339) or for a while (42m, 1h30m; a bare number: seconds).")
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps.")
@click.option("--no-task-ids", is_flag=True, help="Do not include task IDs.")
@click.argument("name")
@global_options
@pass_state
def logs(state: CliState, follow: bool, tail: str, since: str | None, timestamps: bool, no_task_ids: bool,
         name: str) -> None:
    """Fetch the logs of a service's tasks."""
    if tail != "all" and not tail.isdigit():
        raise click.BadParameter(f"{tail!r} is not a number or 'all'", param_hint="--tail")
    _params(tail, since, timestamps, follow)  # a bad --since is refused before any request

    async def one(client: Client, prefix: str, namespace: str, pod: str) -> None:
        path = resource_path(PODS, namespace, pod, "log")
        params = _params(tail, since, timestamps, follow)
        try:
            if follow:
                pending = b""
                async for chunk in client.stream(path, params):
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        click.echo(f"{prefix}    | {line.decode('utf-8', 'replace')}")
                if pending:
                    click.echo(f"{prefix}    | {pending.decode('utf-8', 'replace')}")
                return
            raw = await client.request_raw("GET", path, params=params, accept="text/plain")
            for line in raw.decode("utf-8", "replace").splitlines():
                click.echo(f"{prefix}    | {line}")
        except (ApiError, *TRANSPORT_ERRORS) as e:
            click.echo(f"error from task {prefix}: {' '.join(str(e).split())}", err=True)

    async def go(client: Client) -> None:
        svc = await must_find(client, state, name)
        pods = await tasks(client, svc)
        jobs = []
        for task, pod in zip(as_tasks(name, pods), pods, strict=True):
            prefix = task.name if no_task_ids else f"{task.name}.{task.id[:12]}"
            jobs.append(one(client, f"{prefix}@{task.node or '?'}", svc.namespace, pod["metadata"]["name"]))
        await asyncio.gather(*jobs)

    run(state, go)

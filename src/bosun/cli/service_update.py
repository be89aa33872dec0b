"""``service update`` and ``service rollback``: change a service's workload in place (a
changed template rolls its tasks as its update_config says) or go back to its previous spec."""

from __future__ import annotations

import shlex
import time
from typing import Any

import click

from bosun.cli.common import CliState, fail, global_options, pass_state, run
from bosun.cli.service_flags import common_options, fill_groups
from bosun.cli.swarm_lookup import must_find
from bosun.client.rest import Client
from bosun.compose.errors import ComposeError
from bosun.compose.translate.placement import requirement
from bosun.compose.translate.resources import memory
from bosun.compose.units import size_bytes
from bosun.swarm.converge import converge
from bosun.swarm.flags import ServiceFlags
from bosun.swarm.kinds import NotScalable
from bosun.swarm.rollback import NoPrevious, roll_back

JSON = dict[str, Any]
FORCE_ANNOTATION = "bosun.io/force-update"
CONVERGE_WITHIN = 120.0


def _env(c: JSON, add: tuple[str, ...], remove: tuple[str, ...]) -> None:
    env = [e for e in c.get("env") or [] if e["name"] not in set(remove)]
    for item in add:
        key, _, value = item.partition("=")
        env = [e for e in env if e["name"] != key] + [{"name": key, "value": value}]
    c["env"] = env


def _labels(target: dict[str, str], add: tuple[str, ...], remove: tuple[str, ...]) -> None:
    for key in remove:
        target.pop(key, None)
    for item in add:
        key, _, value = item.partition("=")
        target[key] = value


def _constraints(pod: JSON, add: tuple[str, ...], remove: tuple[str, ...]) -> None:
    if not add and not remove:
        return
    na = pod.setdefault("affinity", {}).setdefault("nodeAffinity", {})
    terms = na.setdefault("requiredDuringSchedulingIgnoredDuringExecution", {}).setdefault(
        "nodeSelectorTerms", [{}])
    term = terms[0]
    try:
        gone = [requirement(r, "--constraint-rm")[1] for r in remove]
        added = [requirement(a, "--constraint-add") for a in add]
    except ComposeError as e:
        fail(f"error: {e}")
    for key in ("matchExpressions", "matchFields"):
        term[key] = [e for e in term.get(key) or [] if e not in gone]
    for kind, req in added:
        term.setdefault("matchExpressions" if kind == "label" else "matchFields", []).append(req)
    for key in ("matchExpressions", "matchFields"):
        if not term[key]:
            term.pop(key)
    if not term:
        pod["affinity"].pop("nodeAffinity")


def _resources(c: JSON, flags: ServiceFlags) -> None:
    res = c.setdefault("resources", {})
    for group, key in ((flags.limits, "limits"), (flags.reservations, "requests")):
        if group.get("cpus") is not None:
            res.setdefault(key, {})["cpu"] = f"{round(float(group['cpus']) * 1000)}m"
        if group.get("memory") is not None:
            res.setdefault(key, {})["memory"] = memory(size_bytes(group["memory"], f"--{key} memory"))
    if not res:
        c.pop("resources")


def _strategy(obj: JSON, flags: ServiceFlags) -> None:
    u = flags.update
    if "parallelism" not in u and "order" not in u:
        return
    spec = obj["spec"]
    strategy = spec.get("strategy") or spec.get("updateStrategy")
    if strategy is None:
        return
    current = strategy.setdefault("rollingUpdate", {})
    start_first = current.get("maxUnavailable") in (0, "0")
    step = u.get("parallelism", current.get("maxSurge") if start_first else current.get("maxUnavailable", 1))
    step = "100%" if step == 0 else step
    if u.get("order", "start-first" if start_first else "stop-first") == "start-first":
        strategy["rollingUpdate"] = {"maxSurge": step, "maxUnavailable": 0}
    else:
        strategy["rollingUpdate"] = {"maxSurge": 0, "maxUnavailable": step}


@click.command("update")
@click.option("--image", default=None, help="New image.")
@click.option("--args", "new_args", default=None, help="New arguments (one string, split as a shell does).")
@click.option("--force", is_flag=True, help="Replace the tasks even if nothing changed.")
@click.option("--env-add", multiple=True)
@click.option("--env-rm", multiple=True)
@click.option("--label-add", multiple=True)
@click.option("--label-rm", multiple=True)
@click.option("--container-label-add", multiple=True)
@click.option("--container-label-rm", multiple=True)
@click.option("--constraint-add", multiple=True)
@click.option("--constraint-rm", multiple=True)
@common_options
@click.argument("name")
@global_options
@pass_state
def update(state: CliState, name: str, image: str | None, new_args: str | None, force: bool, detach: bool,
           **o: Any) -> None:
    """Update a service."""
    flags = ServiceFlags(name=name, image=image or "")
    fill_groups(flags, o)
    unsupported = [k for k in ("mode", "endpoint_mode", "replicas_max_per_node") if o.get(k) is not None]
    if unsupported:
        fail(f"error: --{unsupported[0].replace('_', '-')} cannot be changed by service update")

    async def go(client: Client) -> None:
        svc = await must_find(client, state, name)
        obj = await client.get(svc.kind.resource, svc.name, svc.namespace)
        template = obj["spec"]["template"]
        pod = template["spec"]
        c = pod["containers"][0]
        if image:
            c["image"] = image
            template.setdefault("metadata", {}).setdefault("annotations", {})["bosun.io/image"] = image
        if new_args is not None:
            c["args"] = shlex.split(new_args)
        for key, attr in (("workdir", "workingDir"), ("hostname", None), ("entrypoint", "command")):
            value = o.get(key)
            if value is None:
                continue
            if attr is None:
                pod["hostname"] = value
            else:
                c[attr] = shlex.split(value) if attr == "command" else value
        _env(c, o["env_add"], o["env_rm"])
        _labels(obj["metadata"].setdefault("labels", {}), o["label_add"], o["label_rm"])
        _labels(template["metadata"].setdefault("labels", {}), o["container_label_add"], o["container_label_rm"])
        _constraints(pod, o["constraint_add"], o["constraint_rm"])
        _resources(c, flags)
        _strategy(obj, flags)
        if force:
            template["metadata"].setdefault("annotations", {})[FORCE_ANNOTATION] = str(time.time())
        if o.get("replicas") is not None:
            try:
                obj["spec"].update(svc.kind.scale_patch(obj, o["replicas"])["spec"])
            except NotScalable as e:
                fail(f"error: {e}")
        await client.update(svc.kind.resource, obj)
        click.echo(name)
        if not detach and not await converge(client, svc, click.echo, CONVERGE_WITHIN):
            fail(f"error: service {name} did not converge within {CONVERGE_WITHIN:g}s")

    run(state, go)


@click.command("rollback")
@click.option("-d", "--detach", is_flag=True, help="Return at once instead of waiting to converge.")
@click.argument("name")
@global_options
@pass_state
def rollback(state: CliState, name: str, detach: bool) -> None:
    """Revert a service to its previous spec."""

    async def go(client: Client) -> None:
        svc = await must_find(client, state, name)
        try:
            await roll_back(client, svc)
        except NoPrevious as e:
            fail(f"Error response from daemon: {e}")
        click.echo(name)
        click.echo("rollback: manually requested rollback")
        if not detach and not await converge(client, svc, click.echo, CONVERGE_WITHIN):
            fail(f"error: service {name} did not converge within {CONVERGE_WITHIN:g}s")

    run(state, go)

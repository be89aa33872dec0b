"""``service update`` and ``service rollback``: change a service's workload in place (a
changed template rolls its tasks as its update_config says) or go back to its previous spec."""

from __future__ import annotations

import copy
import json
import shlex
import time
from dataclasses import replace
from typing import Any

import click

from bosun.cli.common import CliState, fail, global_options, pass_state, run
from bosun.cli.service_flags import common_options, fill_groups
from bosun.cli.swarm_lookup import must_find
from bosun.client.rest import Client
from bosun.compose.errors import ComposeError
from bosun.compose.translate.container import numeric_user
from bosun.compose.translate.health import command
from bosun.compose.translate.placement import requirement
from bosun.compose.translate.resources import memory
from bosun.compose.translate.updates import ROLLBACK_ANNOTATION, UPDATE_ANNOTATION
from bosun.compose.units import size_bytes, whole_seconds
from bosun.swarm import mount_changes
from bosun.swarm.apply import apply_object
from bosun.swarm.autoscale import CannotAutoscale, set_autoscaler
from bosun.swarm.converge import converge
from bosun.swarm.flags import ServiceFlags
from bosun.swarm.kinds import NotScalable
from bosun.swarm.mount_changes import file_volume, translate_added
from bosun.swarm.publish import change_host_ports, change_ports, needs_recreate
from bosun.swarm.rollback import NoPrevious, roll_back
from bosun.swarm.services import SERVICES, ServiceRef
from bosun.swarm.updating import UpdateFailed, follow_update, start_of
from bosun.swarm.used_ports import port_conflicts

JSON = dict[str, Any]
FORCE_ANNOTATION = "bosun.io/force-update"
CONVERGE_WITHIN = 120.0


def _env(c: JSON, add: tuple[str, ...], remove: tuple[str, ...]) -> None:
    env = [e for e in c.get("env") or [] if e["name"] not in set(remove)]
    for item in add:
        key, _, value = item.partition("=")
        env = [e for e in env if e["name"] != key] + [{"name": key, "value": value}]
    if env != (c.get("env") or []):  # an empty list written where none was is a new template: every task replaced
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


def _update_config(obj: JSON, flags: ServiceFlags) -> None:
    """--update-*: parallelism and order as the rollout strategy, the rest in the annotation."""
    u = flags.update
    _merge_annotation(obj, UPDATE_ANNOTATION, {k: v for k, v in u.items() if k not in ("parallelism", "order")})
    _merge_annotation(obj, ROLLBACK_ANNOTATION, flags.rollback)
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


def _merge_annotation(obj: JSON, key: str, values: JSON) -> None:
    """Fields Kubernetes has no place for (update and rollback configs) kept as JSON, merged."""
    if values:
        ann = obj["metadata"].setdefault("annotations", {})
        ann[key] = json.dumps({**json.loads(ann.get(key) or "{}"), **values}, sort_keys=True)


def _health(c: JSON, health: JSON, disable: bool) -> None:
    """--health-* change the probes create made of the health check (readiness, and liveness
    delayed by the start period); --no-healthcheck removes them."""
    if disable:
        if health:
            fail("error: --no-healthcheck conflicts with --health-* options")
        c.pop("readinessProbe", None)
        c.pop("livenessProbe", None)
        return
    if not health:
        return
    readiness = c.get("readinessProbe")
    if readiness is None and "test" not in health:
        fail("error: the service has no health check to change: give --health-cmd")
    base = readiness or {"periodSeconds": 30, "timeoutSeconds": 30, "failureThreshold": 3}  # Docker's defaults
    changes: JSON = {}
    try:
        if "test" in health:
            changes["exec"] = {"command": command(health["test"])}
        if "interval" in health:
            changes["periodSeconds"] = whole_seconds(health["interval"], "--health-interval", 1)
        if "timeout" in health:
            changes["timeoutSeconds"] = whole_seconds(health["timeout"], "--health-timeout", 1)
        if "retries" in health:
            changes["failureThreshold"] = int(health["retries"])
        start = whole_seconds(health["start_period"], "--health-start-period") if "start_period" in health else None
    except ComposeError as e:
        fail(f"error: {e}")
    c["readinessProbe"] = {**copy.deepcopy(base), **changes}
    c["livenessProbe"] = {**copy.deepcopy(c.get("livenessProbe") or base), **changes}
    if start is not None:
        c["livenessProbe"]["initialDelaySeconds"] = start


def _process(pod: JSON, c: JSON, user: str | None, stop_grace_period: str | None) -> None:
    if user is not None and not numeric_user(user, c.setdefault("securityContext", {})):
        fail(f"error: --user {user!r}: only a numeric uid[:gid] can be honoured (the image's /etc/passwd is "
             "not read)")
    if stop_grace_period is not None:
        try:
            pod["terminationGracePeriodSeconds"] = whole_seconds(stop_grace_period, "--stop-grace-period")
        except ComposeError as e:
            fail(f"error: {e}")


async def _publish(client: Client, svc: ServiceRef, add: list[str], remove: list[str], c: JSON) -> None:
    service = await client.get(SERVICES, svc.name, svc.namespace)
    before = copy.deepcopy(service)
    try:
        change_ports(service, add, remove)
        change_host_ports(c, add, remove)
    except ComposeError as e:
        fail(f"error: {e}")
    for conflict in await port_conflicts(client, [dict(service, kind="Service")]):
        fail(f"Error response from daemon: {conflict}")
    if needs_recreate(before, service):
        await client.delete(SERVICES, svc.name, svc.namespace)
        meta = service["metadata"]
        service["metadata"] = {k: meta[k] for k in ("name", "namespace", "labels", "annotations") if k in meta}
        await client.create(SERVICES, service, svc.namespace)
    else:
        await client.update(SERVICES, service)
    wanted = {(p["targetPort"], p["protocol"]) for p in service["spec"].get("ports") or []}
    have = {(p["containerPort"], p.get("protocol", "TCP")) for p in c.get("ports") or []}
    c["ports"] = [*(c.get("ports") or []), *({"containerPort": t, "protocol": pr} for t, pr in sorted(wanted - have))]


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
@click.option("--publish-add", multiple=True, help="Publish a port: 30080:80 or published=,target=.")
@click.option("--publish-rm", multiple=True, help="Stop publishing a port (target or published number).")
@click.option("--constraint-add", multiple=True)
@click.option("--constraint-rm", multiple=True)
@click.option("--mount-add", multiple=True, help="Add a mount (as --mount of create).")
@click.option("--mount-rm", multiple=True, help="Remove the mount at this target path.")
@click.option("--secret-add", multiple=True, help="Add a secret: NAME or source=NAME,target=PATH.")
@click.option("--secret-rm", multiple=True, help="Remove a secret by name.")
@click.option("--config-add", multiple=True, help="Add a config: NAME or source=NAME,target=PATH.")
@click.option("--config-rm", multiple=True, help="Remove a config by name.")
@click.option("--autoscale-min", type=int, default=None, help="Fewest tasks the autoscaler keeps.")
@click.option("--autoscale-max", type=int, default=None, help="Most tasks the autoscaler starts (starts autoscaling).")
@click.option("--autoscale-cpu", type=int, default=None,
              help="Average CPU use to keep, in percent of the tasks' CPU reservation (default 80).")
@common_options
@click.argument("name")
@global_options
@pass_state
def update(state: CliState, name: str, image: str | None, new_args: str | None, force: bool, detach: bool,
           **o: Any) -> None:
    """Update a service."""
    flags = ServiceFlags(name=name, image=image or "")
    fill_groups(flags, o)
    # What would make another kind of workload (or is not honoured at all) is refused, never ignored.
    unsupported = [k for k in ("mode", "endpoint_mode", "replicas_max_per_node", "max_concurrent")
                   if o.get(k) is not None]
    unsupported += [f"restart_{k}" for k in flags.restart] + [f"limit_{k}" for k in flags.limits if k == "pids"]
    if unsupported:
        fail(f"error: --{unsupported[0].replace('_', '-')} cannot be changed by service update")

    scaling = {k: o.pop(f"autoscale_{k}") for k in ("min", "max", "cpu")}

    async def go(client: Client) -> None:
        svc = await must_find(client, state, name)
        obj = await client.get(svc.kind.resource, svc.name, svc.namespace)
        start = start_of(obj)  # before the changes below: the update is written on this version
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
        try:
            added = translate_added(svc.name, svc.namespace, list(o["mount_add"]), list(o["secret_add"]),
                                    list(o["config_add"]))
        except ComposeError as e:
            fail(f"error: {e}")
        mount_changes.remove(pod, c, set(o["mount_rm"]), {file_volume("secret", n) for n in o["secret_rm"]} |
                             {file_volume("config", n) for n in o["config_rm"]})
        mount_changes.add(pod, c, added)
        for claim in added.claims:
            await apply_object(client, claim)
        _resources(c, flags)
        _health(c, flags.health, bool(o.get("no_healthcheck")))
        _process(pod, c, o.get("user"), o.get("stop_grace_period"))
        _update_config(obj, flags)
        if force:
            template["metadata"].setdefault("annotations", {})[FORCE_ANNOTATION] = str(time.time())
        if o.get("replicas") is not None:
            try:
                obj["spec"].update(svc.kind.scale_patch(obj, o["replicas"])["spec"])
            except NotScalable as e:
                fail(f"error: {e}")
        if o["publish_add"] or o["publish_rm"]:
            await _publish(client, svc, list(o["publish_add"]), list(o["publish_rm"]), c)
        updated = await client.update(svc.kind.resource, obj)
        if any(v is not None for v in scaling.values()):
            # After the workload's write: the autoscaler may resize it at once.
            try:
                done = await set_autoscaler(client, svc, scaling["min"], scaling["max"], scaling["cpu"])
            except CannotAutoscale as e:
                fail(f"error: {e}")
            click.echo(f"autoscaler {done}: {name}")
        click.echo(name)
        if detach:
            return
        try:
            await follow_update(client, replace(svc, obj=updated), start, click.echo, CONVERGE_WITHIN)
        except UpdateFailed as e:
            fail(f"error: {e}")

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
        if not detach and not (await converge(client, svc, click.echo, CONVERGE_WITHIN)).converged:
            fail(f"error: service {name} did not converge within {CONVERGE_WITHIN:g}s")

    run(state, go)

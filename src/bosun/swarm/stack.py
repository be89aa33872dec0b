"""Deploying and removing a stack: its namespace, then the shared configs and secrets, then
each service in dependency order (waiting for its dependencies' conditions first), then,
with prune, removal of what the file no longer has."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bosun.api.kinds import Kind, must_by_plural
from bosun.client.rest import ApiError, Client
from bosun.compose.translate import ServiceObjects, Translation
from bosun.compose.translate.context import SERVICE_LABEL, STACK_LABEL
from bosun.swarm import conditions
from bosun.swarm.apply import NotServed, apply_object, resource
from bosun.swarm.kinds import KINDS, kind_of
from bosun.swarm.rollback import NoPrevious, roll_back
from bosun.swarm.services import NAMESPACES, ServiceRef, ref_of
from bosun.swarm.updating import UpdateFailed, UpdateStart, follow_update, start_of
from bosun.swarm.used_ports import PortInUse, port_conflicts

JSON = dict[str, Any]
Say = Callable[[str], None]

# What a stack owns besides its workloads, in the order `stack rm` reports them.
OWNED: tuple[tuple[str, Kind], ...] = (
    ("service", must_by_plural("", "v1", "services")),
    ("secret", must_by_plural("", "v1", "secrets")),
    ("config", must_by_plural("", "v1", "configmaps")),
    ("volume", must_by_plural("", "v1", "persistentvolumeclaims")),  # `stack rm` removes them too
    ("autoscaler", must_by_plural("autoscaling", "v2", "horizontalpodautoscalers")),
)
_WORDS = {"ConfigMap": "config", "Secret": "secret", "Service": "endpoint", "NetworkPolicy": "network policy",
          "PersistentVolumeClaim": "volume"}


class NotAStack(Exception):
    """The stack's name is taken by a namespace that is not a stack (or one being removed)."""


@dataclass(slots=True)
class DeployOptions:
    prune: bool = False
    wait_timeout: float = 300.0  # for each depends_on condition, and each service to converge
    detach: bool = True  # False: wait for each written service to converge (or fail as it says)


async def ensure_namespace(client: Client, name: str) -> bool:
    """True when the stack is new (its namespace created now, so it holds nothing yet)."""
    try:
        ns = await client.get(NAMESPACES, name)
    except ApiError as e:
        if not e.not_found:
            raise
        await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                         "metadata": {"name": name, "labels": {STACK_LABEL: name}}})
        return True
    meta = ns.get("metadata") or {}
    if (meta.get("labels") or {}).get(STACK_LABEL) != name:
        # `stack rm` deletes a stack's namespace: never adopt one that holds something else.
        raise NotAStack(f"namespace {name} exists and is not a stack: choose another stack name")
    if meta.get("deletionTimestamp"):
        raise NotAStack(f"stack {name} is being removed: try again when `bosun stack ls` no longer lists it")
    return False


def _label(obj: JSON) -> str:
    meta = obj["metadata"]
    return str((meta.get("labels") or {}).get(SERVICE_LABEL) or f"{meta['namespace']}_{meta['name']}")


def _waves(services: list[ServiceObjects]) -> list[list[ServiceObjects]]:
    """The services in dependency order, cut where one depends on another: the services of
    a wave are written together (a stack of independent services in one round of requests,
    not one after the other); one with depends_on waits for what came before it."""
    waves: list[list[ServiceObjects]] = []
    for svc in services:
        if svc.depends_on or not waves or waves[-1][-1].depends_on:
            waves.append([svc])
        else:
            waves[-1].append(svc)
    return waves


async def deploy(client: Client, t: Translation, opts: DeployOptions, say: Say, warn: Say) -> None:
    """Raises NotAStack or PortInUse (before writing anything), TimeoutError, DependencyFailed or, when
    waiting, UpdateFailed naming the service whose update failed."""
    conflicts = await port_conflicts(client, t.all_objects())
    if conflicts:
        raise PortInUse(conflicts[0])
    new_stack = await ensure_namespace(client, t.stack)
    unserved: set[str] = set()

    async def write(obj: JSON) -> str:
        try:
            return await apply_object(client, obj, new=new_stack)
        except NotServed as e:
            if str(e) not in unserved:
                unserved.add(str(e))
                warn(f"{e} is not served by this cluster; {obj['kind']} objects of the stack are not written")
            return "skipped"

    updated: list[ServiceRef] = []  # services this deploy updated, rolled back if a later one fails

    async def service(svc: ServiceObjects, say: Say) -> None:
        for dep, condition in svc.depends_on.items():
            say(f"Waiting for service {t.stack}_{dep} to be {conditions.WORDS[condition]}")
            try:
                await conditions.wait_for(client, t.stack, dep, condition, opts.wait_timeout)
            except conditions.DependencyFailed as e:
                raise conditions.DependencyFailed(f"service {t.stack}_{dep} {e}") from None
        # A service's own objects (its Service, network policy, volumes...) do not depend on one
        # another: written together, then the workload that uses them.
        _first_error(await asyncio.gather(*(write(obj) for obj in svc.objects), return_exceptions=True))
        if not new_stack:  # a new stack has no workload of another kind to drop
            await _drop_other_kinds(client, svc.workload)
        start = None if opts.detach else await _update_start(client, svc.workload)
        result = await write(svc.workload)
        verb = {"created": "Creating", "updated": "Updating"}.get(result)
        if verb:
            say(f"{verb} service {_label(svc.workload)}")
        if verb and start is not None:
            res = resource(svc.workload)
            live = await client.get(res, svc.dns, t.stack)
            ref = ref_of(kind_of(dict(live, kind=res.kind)), live)
            try:
                await follow_update(client, ref, start, say, opts.wait_timeout)
            except UpdateFailed as e:
                await _roll_back_all(client, updated, say, f"stack {t.stack} rolled back: {e}")
                raise
            if result == "updated":
                updated.append(ref)
        for obj in svc.after:
            if await write(obj) == "created":
                say(f"Creating autoscaler {_label(obj)}")

    for obj in t.shared:
        if await write(obj) == "created":
            say(f"Creating {_WORDS.get(obj['kind'], obj['kind'].lower())} {t.stack}_{obj['metadata']['name']}")
    # Waiting for each service to converge (and rolling back the ones before a failed one) stays
    # one service at a time, as Docker's `stack deploy --detach=false` goes.
    for wave in _waves(t.services) if opts.detach else [[svc] for svc in t.services]:
        if len(wave) == 1:
            await service(wave[0], say)
            continue
        lines: list[list[str]] = [[] for _ in wave]  # printed in the file's order, whatever finished first
        results = await asyncio.gather(*(service(svc, out.append) for svc, out in zip(wave, lines, strict=True)),
                                       return_exceptions=True)
        for out in lines:
            for line in out:
                say(line)
        _first_error(results)
    if opts.prune:
        await prune(client, t, say)


def _first_error(results: list[Any]) -> None:
    """Raise the first exception of a gather(..., return_exceptions=True), once all ended."""
    for r in results:
        if isinstance(r, BaseException):
            raise r


async def _update_start(client: Client, workload: JSON) -> UpdateStart:
    """Read before the workload's write, so its verdict is not taken from the update before."""
    meta = workload["metadata"]
    try:
        return start_of(await client.get(resource(workload), meta["name"], meta.get("namespace")))
    except NotServed:
        return start_of(None)  # the write skips it: nothing is followed
    except ApiError as e:
        if not e.not_found:
            raise
        return start_of(None)


async def _roll_back_all(client: Client, refs: list[ServiceRef], say: Say, why: str) -> None:
    """A failed stack update takes back the services it already updated (Docker leaves them)."""
    for ref in reversed(refs):
        try:
            await roll_back(client, ref, why)
        except NoPrevious:
            continue
        say(f"Rolling back service {ref.display}")


async def _drop_other_kinds(client: Client, workload: JSON) -> None:
    """A service whose mode changed (replicated -> global ...) changes kind: its workload of
    the old kind goes, or two workloads would run the same service."""
    meta = workload["metadata"]
    for kind in KINDS:
        if kind.resource.kind == workload["kind"]:
            continue
        try:
            await client.delete(kind.resource, meta["name"], meta["namespace"], propagation_policy="Background")
        except ApiError as e:
            if not e.not_found:
                raise


async def prune(client: Client, t: Translation, say: Say) -> None:
    """Delete the stack's objects that the new file no longer has."""
    wanted = {(o["kind"], o["metadata"]["name"]) for o in t.all_objects()}
    selector = f"{STACK_LABEL}={t.stack}"
    for kind in KINDS:
        items, _ = await client.list_all(kind.resource, t.stack, label_selector=selector)
        for obj in items:
            meta = obj["metadata"]
            if (kind.resource.kind, meta["name"]) not in wanted:
                say(f"Removing service {(meta.get('labels') or {}).get(SERVICE_LABEL) or meta['name']}")
                await client.delete(kind.resource, meta["name"], t.stack, propagation_policy="Background")
    others = [res for word, res in OWNED if word != "volume"]  # prune keeps data
    try:
        others.append(resource({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy"}))
    except NotServed:
        pass
    for res in others:
        items, _ = await client.list_all(res, t.stack, label_selector=selector)
        for obj in items:
            if (res.kind, obj["metadata"]["name"]) not in wanted:
                await client.delete(res, obj["metadata"]["name"], t.stack)


async def stack_names(client: Client) -> dict[str, int]:
    """Every stack and how many services it has."""
    namespaces, _ = await client.list_all(NAMESPACES, label_selector=STACK_LABEL)
    out: dict[str, int] = {}
    for ns in namespaces:
        meta = ns.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            continue
        name = str((meta.get("labels") or {}).get(STACK_LABEL) or meta.get("name"))
        count = 0
        for kind in KINDS:
            items, _ = await client.list_all(kind.resource, str(meta["name"]), label_selector=STACK_LABEL)
            count += len(items)
        out[name] = count
    return out


async def remove(client: Client, stack: str, say: Say) -> bool:
    """Remove every object of ``stack`` and its namespace; False if there was no such stack."""
    try:
        ns = await client.get(NAMESPACES, stack)
    except ApiError as e:
        if e.not_found:
            return False
        raise
    meta = ns.get("metadata") or {}
    if (meta.get("labels") or {}).get(STACK_LABEL) != stack or meta.get("deletionTimestamp"):
        return False
    selector = f"{STACK_LABEL}={stack}"
    for kind in KINDS:
        items, _ = await client.list_all(kind.resource, stack, label_selector=selector)
        for obj in sorted(items, key=lambda o: o["metadata"]["name"]):
            meta = obj["metadata"]
            say(f"Removing service {(meta.get('labels') or {}).get(SERVICE_LABEL) or meta['name']}")
    for word, res in OWNED[1:]:
        items, _ = await client.list_all(res, stack, label_selector=selector)
        for obj in sorted(items, key=lambda o: o["metadata"]["name"]):
            say(f"Removing {word} {stack}_{obj['metadata']['name']}")
    await client.delete(NAMESPACES, stack)
    return True

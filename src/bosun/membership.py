"""Which managers a cluster has, and which of them are alive: one Lease per manager.

Every control plane renews ``kube-system/bosun-manager-<id>`` for as long as it runs (a node's
agent renews its own Lease the same way), labelled ``bosun.io/manager`` and annotated with
the URL it serves the API on and the node it runs beside. From these:

* ``bosun node ls`` shows MANAGER STATUS (Leader / Reachable / Unreachable) and marks with
  ``*`` the node of the manager the client talks to;
* a joining worker learns every manager's address, so its agent can move to another when one
  goes away.

Reachability is judged as Kubernetes judges node Leases: renewTime + leaseDurationSeconds
against the reader's clock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bosun.client.leader import LEASES, RETRYABLE, micro_time
from bosun.client.rest import ApiError, Client

log = logging.getLogger(__name__)

NAMESPACE = "kube-system"
LABEL = "bosun.io/manager"
URL_ANNOTATION = "bosun.io/api-url"
NODE_ANNOTATION = "bosun.io/node"
LEADER_LEASE = "bosun-controlplane"
# The manager role as placement sees it (``node.role==manager``), set by ``bosun node promote``.
MANAGER_LABEL = "node-role.kubernetes.io/control-plane"
# On a Node whose manager its worker process started when promoted (and stops when demoted).
PROMOTED_ANNOTATION = "bosun.io/promoted-manager"


def lease_name(identity: str) -> str:
    """A Lease name from a control plane's identity (``host_hash``: the hash part, since a
    host name may hold characters a name may not)."""
    return "bosun-manager-" + identity.rsplit("_", 1)[-1].lower()


@dataclass(frozen=True, slots=True)
class Manager:
    identity: str
    url: str
    node: str
    alive: bool


def _parse_time(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except (TypeError, ValueError):
        return None


def manager_of(lease: dict[str, Any], now: datetime | None = None) -> Manager | None:
    meta = lease.get("metadata") or {}
    if LABEL not in (meta.get("labels") or {}):
        return None
    spec = lease.get("spec") or {}
    ann = meta.get("annotations") or {}
    renewed = _parse_time(str(spec.get("renewTime") or ""))
    duration = float(spec.get("leaseDurationSeconds") or 0)
    alive = renewed is not None and (renewed.timestamp() + duration) >= (now or datetime.now(UTC)).timestamp()
    return Manager(str(spec.get("holderIdentity") or ""), str(ann.get(URL_ANNOTATION) or ""),
                   str(ann.get(NODE_ANNOTATION) or ""), alive)


def managers_of(leases: list[dict[str, Any]]) -> list[Manager]:
    now = datetime.now(UTC)
    return [m for m in (manager_of(le, now) for le in leases) if m is not None]


async def list_managers(client: Client) -> list[Manager]:
    items, _ = await client.list_all(LEASES, NAMESPACE, label_selector=LABEL)
    return managers_of(list(items))


async def leader_identity(client: Client) -> str:
    try:
        lease = await client.get(LEASES, LEADER_LEASE, NAMESPACE)
    except ApiError as e:
        if e.not_found or e.status == 403:
            return ""
        raise
    return str((lease.get("spec") or {}).get("holderIdentity") or "")


def _lease(identity: str, url: str, node: str, duration: int) -> dict[str, Any]:
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": lease_name(identity), "namespace": NAMESPACE, "labels": {LABEL: "true"},
                         "annotations": {URL_ANNOTATION: url, NODE_ANNOTATION: node}},
            "spec": {"holderIdentity": identity, "leaseDurationSeconds": duration, "renewTime": micro_time()}}


async def heartbeat(client: Client, identity: str, url: str, node: str, duration: float,
                    on_managers: Callable[[list[str]], None] | None = None) -> None:
    """Renew this manager's Lease every third of ``duration`` until cancelled, and tell
    ``on_managers`` the URLs of the live managers each time."""
    seconds = max(1, round(duration))
    name = lease_name(identity)
    while True:
        try:
            body = _lease(identity, url, node, seconds)
            try:
                await client.patch(LEASES, name, {"metadata": body["metadata"], "spec": body["spec"]}, NAMESPACE)
            except ApiError as e:
                if not e.not_found:
                    raise
                await client.create(LEASES, body, NAMESPACE)
            if on_managers is not None:
                on_managers(sorted(m.url for m in await list_managers(client) if m.alive and m.url))
        except asyncio.CancelledError:
            raise
        except RETRYABLE as e:
            log.warning("manager lease %s: %s", name, e)
        await asyncio.sleep(max(0.5, duration / 3))


async def resign(client: Client, identity: str) -> None:
    """Delete this manager's Lease at a clean stop (it shows as gone at once, not Unreachable)."""
    try:
        await client.delete(LEASES, lease_name(identity), NAMESPACE)
    except (ApiError, *RETRYABLE):
        pass

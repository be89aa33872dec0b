"""EndpointSlice controller: the endpoints of every Service with a selector, as
``discovery.k8s.io/v1`` EndpointSlices of at most 100 endpoints each.

Slices exist so that a change to one pod of a 10,000-pod Service rewrites one small object,
not one huge Endpoints that every proxy must download again. That only holds if endpoints stay
in the slice they are in: so an endpoint that is still wanted keeps its slice, new ones fill
slices with room first, and only then are new slices created (Kubernetes' reconciler does the
same). Unlike Endpoints, slices also list terminating pods (``conditions.terminating``) so that
proxies can drain connections to them.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from bosun.client.errors import ApiError
from bosun.component import ComponentContext
from bosun.controllers._common import (
    PODS,
    Controller,
    Obj,
    is_pod_ready,
    namespace_terminating,
    owner_ref,
    resource,
    split_key,
)
from bosun.controllers.endpoints import (
    HEADLESS_LABEL,
    SERVICES,
    PodsToServices,
    endpoint_port,
    find_port,
    is_headless,
    pod_ip,
    selects,
    service_selector,
    should_be_listed,
)

log = logging.getLogger(__name__)

SLICES = resource("discovery.k8s.io", "v1", "endpointslices")
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "endpointslice-controller.k8s.io"
MAX_ENDPOINTS = 100
SERVICE_INDEX = "endpointslice-service"
POD_NS_INDEX = "endpointslice-namespace"

PortKey = tuple[tuple[str, int, str, str], ...]


# ---- what the slices should hold (pure functions) -----------------------------------------

def slice_endpoint(svc: Obj, pod: Obj) -> Obj:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    terminating = bool(meta.get("deletionTimestamp"))
    publish = bool((svc.get("spec") or {}).get("publishNotReadyAddresses"))
    serving = publish or is_pod_ready(pod)
    ep: Obj = {"addresses": [pod_ip(pod)],
               "conditions": {"ready": serving and (publish or not terminating), "serving": serving,
                              "terminating": terminating}}
    if spec.get("hostname") and spec.get("subdomain") == svc["metadata"]["name"]:
        ep["hostname"] = spec["hostname"]
    if spec.get("nodeName"):
        ep["nodeName"] = spec["nodeName"]
    ep["targetRef"] = {"kind": "Pod", "namespace": meta.get("namespace"), "name": meta.get("name"),
                       "uid": meta.get("uid")}
    return ep


def port_key(ports: list[Obj]) -> PortKey:
    return tuple(sorted((p.get("name", ""), int(p.get("port") or 0), p.get("protocol", ""),
                         p.get("appProtocol", "")) for p in ports))


def desired_endpoints(svc: Obj, pods: list[Obj]) -> dict[PortKey, tuple[list[Obj], dict[str, Obj]]]:
    """Port set -> (ports, {endpoint id: endpoint}) for the pods ``svc`` selects."""
    svc_ports = (svc.get("spec") or {}).get("ports") or []
    out: dict[PortKey, tuple[list[Obj], dict[str, Obj]]] = {}
    for pod in pods:
        if not should_be_listed(pod, include_terminating=True):
            continue
        ports = []
        for sp in svc_ports:
            number = find_port(pod, sp)
            if number is not None:
                ports.append(endpoint_port(sp, number))
        if svc_ports and not ports:
            continue
        if not svc_ports and not is_headless(svc):
            continue
        ports.sort(key=lambda p: (p.get("name", ""), p["port"]))
        ep = slice_endpoint(svc, pod)
        entry = out.setdefault(port_key(ports), (ports, {}))
        entry[1][endpoint_id(ep)] = ep
    return out


def endpoint_id(ep: Obj) -> str:
    return str((ep.get("targetRef") or {}).get("uid") or (ep.get("addresses") or [""])[0])


def _sorted(eps: list[Obj]) -> list[Obj]:
    return sorted(eps, key=lambda e: ((e.get("addresses") or [""])[0], endpoint_id(e)))


def plan_slices(existing: list[Obj], desired: dict[PortKey, tuple[list[Obj], dict[str, Obj]]]
                ) -> tuple[list[tuple[Obj, list[Obj], list[Obj]]], list[tuple[list[Obj], list[Obj]]], list[Obj]]:
    """(updates as (slice, ports, endpoints), creates as (ports, endpoints), deletes).
    Endpoints stay in their current slice; new ones fill slices with room, then new slices."""
    remaining = {k: (ports, dict(eps)) for k, (ports, eps) in desired.items()}
    kept: list[tuple[Obj, PortKey, list[Obj], list[Obj]]] = []
    deletes: list[Obj] = []
    for s in existing:
        key = port_key(s.get("ports") or [])
        if key not in remaining:
            deletes.append(s)
            continue
        ports, pool = remaining[key]
        eps = [pool.pop(endpoint_id(e)) for e in s.get("endpoints") or [] if endpoint_id(e) in pool]
        kept.append((s, key, ports, eps))
    for _s, key, _ports, eps in kept:  # fill slices with room
        pool = remaining[key][1]
        while len(eps) < MAX_ENDPOINTS and pool:
            eps.append(pool.pop(next(iter(pool))))
    creates: list[tuple[list[Obj], list[Obj]]] = []
    for key in sorted(remaining):
        ports, pool = remaining[key]
        rest = _sorted(list(pool.values()))
        for i in range(0, len(rest), MAX_ENDPOINTS):
            creates.append((ports, rest[i:i + MAX_ENDPOINTS]))
    updates = []
    for s, _key, ports, eps in kept:
        if eps:
            updates.append((s, ports, _sorted(eps)))
        else:
            deletes.append(s)
    # A Service with no endpoints at all still has one (empty) slice, as in Kubernetes.
    if not updates and not creates:
        if deletes:
            placeholder = deletes.pop(0)
            updates.append((placeholder, [], []))
        else:
            creates.append(([], []))
    return updates, creates, deletes


def slice_labels(svc: Obj) -> dict[str, str]:
    labels = {str(k): str(v) for k, v in ((svc.get("metadata") or {}).get("labels") or {}).items()}
    labels[SERVICE_NAME_LABEL] = svc["metadata"]["name"]
    labels[MANAGED_BY_LABEL] = MANAGED_BY
    if is_headless(svc):
        labels[HEADLESS_LABEL] = ""
    else:
        labels.pop(HEADLESS_LABEL, None)
    return labels


# ---- the controller ------------------------------------------------------------------------

def _service_of(s: Obj) -> list[str]:
    meta = s.get("metadata") or {}
    labels = meta.get("labels") or {}
    if labels.get(MANAGED_BY_LABEL) != MANAGED_BY or not labels.get(SERVICE_NAME_LABEL):
        return []
    return [f"{meta.get('namespace')}/{labels[SERVICE_NAME_LABEL]}"]


class EndpointSliceController(Controller):
    name = "endpointslice"
    workers = 4

    def __init__(self, ctx: ComponentContext) -> None:
        super().__init__(ctx)
        self.services = ctx.informers.get(SERVICES)
        self.pods = ctx.informers.get(PODS)
        self.slices = ctx.informers.get(SLICES)
        self.slices.add_index(SERVICE_INDEX, _service_of)
        # Our own writes the informer has not shown yet, per Service: slice name -> (the
        # resourceVersion written, or None once deleted; give-up time). Acting on a cache that
        # lacks a slice we just created would create it twice.
        self._pending: dict[str, dict[str, tuple[int | None, float]]] = {}
        self.pods.add_index(POD_NS_INDEX, lambda p: [str((p.get("metadata") or {}).get("namespace") or "")])
        self.services.add_handler(self.enqueue, lambda old, new: self.enqueue(new), self.enqueue)
        pods_to_services = PodsToServices(self.services, self.queue)
        self.pods.add_handler(pods_to_services.pod_changed, pods_to_services.pod_updated, pods_to_services.pod_changed)
        self.slices.add_handler(self._slice_changed, lambda old, new: self._slice_changed(new), self._slice_changed)

    def _slice_changed(self, s: Obj) -> None:
        for key in _service_of(s):
            self.queue.add(key)

    def _caught_up(self, key: str, ns: str | None) -> bool:
        pending = self._pending.get(key)
        if not pending:
            return True
        clock = time.monotonic()
        for name, (rv, give_up) in list(pending.items()):
            cur = self.slices.get(ns, name)
            seen = cur is None if rv is None else (
                cur is not None and int((cur.get("metadata") or {}).get("resourceVersion") or 0) >= rv)
            if seen or clock > give_up:
                del pending[name]
        if pending:
            return False
        del self._pending[key]
        return True

    def _wrote(self, key: str, obj: Obj | None, name: str) -> None:
        rv = int((obj.get("metadata") or {}).get("resourceVersion") or 0) if obj is not None else None
        self._pending.setdefault(key, {})[name] = (rv, time.monotonic() + 5.0)

    async def reconcile(self, key: str) -> None:
        ns, name = split_key(key)
        if not self._caught_up(key, ns):
            self.queue.add_after(key, 0.05)
            return
        svc = self.services.get(ns, name)
        existing = [s for s in self.slices.by_index(SERVICE_INDEX, key) if not (s.get("metadata") or {})
                    .get("deletionTimestamp")]
        sel = service_selector(svc) if svc is not None else None
        if svc is None or sel is None or (svc.get("metadata") or {}).get("deletionTimestamp"):
            # Gone, or no longer selecting: its slices go (the garbage collector would remove
            # them with the Service too; doing it here also covers a removed selector).
            for s in existing:
                await self._delete(s)
            return
        pods = [p for p in self.pods.by_index(POD_NS_INDEX, ns or "") if selects(sel, p)]
        desired = desired_endpoints(svc, pods)
        updates, creates, deletes = plan_slices(existing, desired)
        labels = slice_labels(svc)
        owner = owner_ref({"apiVersion": "v1", "kind": "Service", "metadata": svc["metadata"]})
        for s, ports, eps in updates:
            meta = s.get("metadata") or {}
            if (s.get("ports") or []) == ports and (s.get("endpoints") or []) == eps \
                    and (meta.get("labels") or {}) == labels:
                continue
            updated = dict(s, ports=ports, endpoints=eps)
            updated["metadata"] = dict(meta, labels=labels)
            try:
                self._wrote(key, await self.client.update(SLICES, updated), str(meta.get("name")))
            except ApiError as e:
                if e.status not in (404, 409):
                    raise
                # Changed or deleted by someone else: plan again from what the informer shows.
                self.queue.add_after(key, 0.1)
                return
        for ports, eps in creates:
            body: Obj = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                         "metadata": {"generateName": f"{name}-", "namespace": ns, "labels": labels,
                                      "ownerReferences": [owner]},
                         "addressType": "IPv4", "endpoints": eps, "ports": ports}
            try:
                made = await self.client.create(SLICES, body, ns)
            except ApiError as exc:
                if namespace_terminating(exc):
                    return
                raise
            self._wrote(key, made, str(made["metadata"]["name"]))
        for s in deletes:
            await self._delete(s)
            self._wrote(key, None, str((s.get("metadata") or {}).get("name")))

    async def _delete(self, s: Obj) -> None:
        meta: dict[str, Any] = s.get("metadata") or {}
        try:
            await self.client.delete(SLICES, str(meta.get("name")), meta.get("namespace"))
        except ApiError as e:
            if e.status != 404:
                raise


async def run(ctx: ComponentContext) -> None:
    await EndpointSliceController(ctx).run()

"""Endpoints controller: for every Service with a selector, an Endpoints object of the same
name listing the IPs and ports of the pods it selects, ready ones apart from not-ready ones.

Service proxies and DNS read these objects instead of the pods, so they learn about a
readiness flip or a rescheduled pod from one small object per Service. Services without a
selector keep the Endpoints their users write (that is how a Service points outside the
cluster), so this controller never touches those.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from bosun.client.errors import ApiError
from bosun.client.informer import Informer
from bosun.client.workqueue import WorkQueue
from bosun.component import ComponentContext
from bosun.controllers._common import (
    PODS,
    Controller,
    Obj,
    is_pod_ready,
    key_of,
    namespace_terminating,
    resource,
    split_key,
)

log = logging.getLogger(__name__)

SERVICES = resource("", "v1", "services")
ENDPOINTS = resource("", "v1", "endpoints")
MANAGED_BY = "endpoints.kubernetes.io/managed-by"
CONTROLLER_NAME = "endpoint-controller"
HEADLESS_LABEL = "service.kubernetes.io/headless"
NS_INDEX = "endpoints-namespace"
MAX_ADDRESSES = 1000
OVER_CAPACITY = "endpoints.kubernetes.io/over-capacity"


# ---- what the Endpoints of a Service should be (pure functions) ---------------------------

def service_selector(svc: Obj) -> dict[str, str] | None:
    """The Service's pod selector; None (or empty) means the Service's Endpoints are the user's."""
    sel = (svc.get("spec") or {}).get("selector")
    return {str(k): str(v) for k, v in sel.items()} if sel else None


def selects(selector: dict[str, str], pod: Obj) -> bool:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())


def is_headless(svc: Obj) -> bool:
    return (svc.get("spec") or {}).get("clusterIP") == "None"


def pod_ip(pod: Obj) -> str:
    status = pod.get("status") or {}
    ip = status.get("podIP")
    if not ip:
        ips = status.get("podIPs") or []
        ip = ips[0].get("ip") if ips else ""
    return str(ip or "")


def should_be_listed(pod: Obj, include_terminating: bool) -> bool:
    """Kubernetes' ShouldPodBeInEndpoints: finished pods, pods without an IP and (unless the
    Service publishes not-ready addresses) terminating pods are left out."""
    spec = pod.get("spec") or {}
    phase = (pod.get("status") or {}).get("phase")
    policy = spec.get("restartPolicy") or "Always"
    if policy == "Never" and phase in ("Failed", "Succeeded"):
        return False
    if policy == "OnFailure" and phase == "Succeeded":
        return False
    if not pod_ip(pod):
        return False
    return include_terminating or not (pod.get("metadata") or {}).get("deletionTimestamp")


def find_port(pod: Obj, svc_port: Obj) -> int | None:
    """The pod port a Service port sends to: a named targetPort is looked up among the pod's
    container ports (same protocol); a number is used as is."""
    target = svc_port.get("targetPort")
    if target in (None, "", 0):
        target = svc_port.get("port")
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    protocol = svc_port.get("protocol") or "TCP"
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == target and (p.get("protocol") or "TCP") == protocol:
                return int(p["containerPort"])
    return None


def endpoint_address(svc: Obj, pod: Obj) -> Obj:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    addr: Obj = {"ip": pod_ip(pod)}
    # A pod with hostname+subdomain naming this Service gets a DNS name of its own.
    if spec.get("hostname") and spec.get("subdomain") == svc["metadata"]["name"]:
        addr["hostname"] = spec["hostname"]
    if spec.get("nodeName"):
        addr["nodeName"] = spec["nodeName"]
    addr["targetRef"] = {"kind": "Pod", "namespace": meta.get("namespace"), "name": meta.get("name"),
                         "uid": meta.get("uid")}
    return addr


def endpoint_port(svc_port: Obj, number: int) -> Obj:
    out: Obj = {"port": number, "protocol": svc_port.get("protocol") or "TCP"}
    if svc_port.get("name"):
        out["name"] = svc_port["name"]
    if svc_port.get("appProtocol"):
        out["appProtocol"] = svc_port["appProtocol"]
    return out


def pod_endpoints(svc: Obj, pod: Obj) -> tuple[Obj, list[Obj], bool] | None:
    """(address, ports, ready) of one pod for ``svc``, or None when it is not listed.
    ``ready`` is True for pods under ``addresses`` rather than ``notReadyAddresses``."""
    spec = svc.get("spec") or {}
    publish = bool(spec.get("publishNotReadyAddresses"))
    if not should_be_listed(pod, publish):
        return None
    ports: list[Obj] = []
    svc_ports = spec.get("ports") or []
    if not svc_ports and not is_headless(svc):
        return None  # a ClusterIP service without ports has nothing to send anywhere
    for sp in svc_ports:
        number = find_port(pod, sp)
        if number is not None:
            ports.append(endpoint_port(sp, number))
    if svc_ports and not ports:
        return None
    return endpoint_address(svc, pod), ports, publish or is_pod_ready(pod)


def _port_key(p: Obj) -> tuple[str, int, str, str]:
    return (p.get("name", ""), int(p["port"]), p.get("protocol", ""), p.get("appProtocol", ""))


def _addr_key(a: Obj) -> tuple[str, str]:
    return (a["ip"], (a.get("targetRef") or {}).get("uid") or "")


def build_subsets(svc: Obj, pods: Iterable[Obj]) -> list[Obj]:
    """Endpoints subsets, packed as Kubernetes' RepackSubsets does: addresses that expose the
    same set of ports share one subset. Sorted so equal inputs give equal output."""
    groups: dict[tuple[tuple[str, int, str, str], ...], tuple[list[Obj], list[Obj], list[Obj]]] = {}
    for pod in pods:
        got = pod_endpoints(svc, pod)
        if got is None:
            continue
        addr, ports, ready = got
        ports = sorted(ports, key=_port_key)
        key = tuple(_port_key(p) for p in ports)
        entry = groups.setdefault(key, (ports, [], []))
        (entry[1] if ready else entry[2]).append(addr)
    subsets: list[Obj] = []
    for key in sorted(groups):
        ports, ready_addrs, unready_addrs = groups[key]
        subset: Obj = {}
        if ready_addrs:
            subset["addresses"] = sorted(ready_addrs, key=_addr_key)
        if unready_addrs:
            subset["notReadyAddresses"] = sorted(unready_addrs, key=_addr_key)
        if ports:
            subset["ports"] = ports
        subsets.append(subset)
    return subsets


def _share(sizes: list[int], budget: int) -> list[int]:
    """Split ``budget`` over lists of ``sizes`` in proportion (largest remainders first)."""
    total = sum(sizes)
    if total <= budget:
        return list(sizes)
    exact = [n * budget / total for n in sizes]
    out = [int(x) for x in exact]
    for i in sorted(range(len(sizes)), key=lambda i: exact[i] - out[i], reverse=True)[:budget - sum(out)]:
        out[i] += 1
    return out


def truncate_subsets(subsets: list[Obj], limit: int = MAX_ADDRESSES) -> tuple[list[Obj], bool]:
    """Kubernetes caps an Endpoints at 1000 addresses (EndpointSlices hold the rest): ready
    addresses are kept first, spread over subsets in proportion. Returns (subsets, truncated)."""
    ready = [len(s.get("addresses") or []) for s in subsets]
    unready = [len(s.get("notReadyAddresses") or []) for s in subsets]
    if sum(ready) + sum(unready) <= limit:
        return subsets, False
    keep_ready = _share(ready, limit)
    keep_unready = _share(unready, limit - sum(keep_ready))
    out = []
    for s, r, u in zip(subsets, keep_ready, keep_unready, strict=True):
        t = {k: v for k, v in s.items() if k not in ("addresses", "notReadyAddresses")}
        if r:
            t["addresses"] = s["addresses"][:r]
        if u:
            t["notReadyAddresses"] = s["notReadyAddresses"][:u]
        if r or u:
            out.append(t)
    return out, True


def endpoints_labels(svc: Obj) -> dict[str, str]:
    labels = {str(k): str(v) for k, v in ((svc.get("metadata") or {}).get("labels") or {}).items()}
    labels[MANAGED_BY] = CONTROLLER_NAME
    if is_headless(svc):
        labels[HEADLESS_LABEL] = ""
    else:
        labels.pop(HEADLESS_LABEL, None)
    return labels


# ---- the controller ------------------------------------------------------------------------

def _rv(obj: Obj) -> int:
    return int((obj.get("metadata") or {}).get("resourceVersion") or 0)


def pod_summary(pod: Obj) -> tuple[Any, ...]:
    """What of a pod can change its Endpoints entry; other updates (e.g. container restarts
    counted in status) are ignored so they cost no reconcile."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    ports = [(p.get("name"), p.get("containerPort"), p.get("protocol"))
             for c in spec.get("containers") or [] for p in c.get("ports") or []]
    return (meta.get("labels"), bool(meta.get("deletionTimestamp")), pod_ip(pod), is_pod_ready(pod),
            (pod.get("status") or {}).get("phase"), spec.get("nodeName"), spec.get("hostname"),
            spec.get("subdomain"), ports)


class PodsToServices:
    """Pod events as keys of the Services whose selector picks the pod: both the Endpoints
    and the EndpointSlice controller reconcile a Service when one of its pods changes
    (before and after an update, so a pod that stops matching leaves its Service too)."""

    def __init__(self, services: Informer, queue: WorkQueue) -> None:
        self.services = services
        self.queue = queue

    def selecting(self, pod: Obj) -> set[str]:
        ns = (pod.get("metadata") or {}).get("namespace")
        out = set()
        for svc in self.services.list(ns):
            sel = service_selector(svc)
            if sel is not None and selects(sel, pod):
                out.add(key_of(svc))
        return out

    def pod_changed(self, pod: Obj) -> None:
        for key in self.selecting(pod):
            self.queue.add(key)

    def pod_updated(self, old: Obj, new: Obj) -> None:
        if pod_summary(old) == pod_summary(new):
            return
        for key in self.selecting(old) | self.selecting(new):
            self.queue.add(key)


class EndpointsController(Controller):
    name = "endpoint"
    workers = 4

    def __init__(self, ctx: ComponentContext) -> None:
        super().__init__(ctx)
        self.services = ctx.informers.get(SERVICES)
        self.pods = ctx.informers.get(PODS)
        self.endpoints = ctx.informers.get(ENDPOINTS)
        self._written: dict[str, Obj] = {}
        self.pods.add_index(NS_INDEX, lambda p: [str((p.get("metadata") or {}).get("namespace") or "")])
        self.services.add_handler(self.enqueue, lambda old, new: self.enqueue(new), self.enqueue)
        pods_to_services = PodsToServices(self.services, self.queue)
        self.pods.add_handler(pods_to_services.pod_changed, pods_to_services.pod_updated, pods_to_services.pod_changed)
        # A managed Endpoints edited or deleted by hand is put back; one left over from a
        # Service deleted while no controller ran is seen (on add) and removed.
        self.endpoints.add_handler(self._endpoints_changed, lambda old, new: self._endpoints_changed(new),
                                   self._endpoints_changed)

    def _endpoints_changed(self, ep: Obj) -> None:
        if ((ep.get("metadata") or {}).get("labels") or {}).get(MANAGED_BY) == CONTROLLER_NAME:
            self.queue.add(key_of(ep))

    async def reconcile(self, key: str) -> None:
        ns, name = split_key(key)
        svc = self.services.get(ns, name)
        current = self._current(key)
        if svc is None or (svc.get("metadata") or {}).get("deletionTimestamp"):
            if current is not None and svc is None:
                self._written.pop(key, None)
                await self._delete(ns, name)
            return
        if service_selector(svc) is None:
            return  # the user's Endpoints
        sel = service_selector(svc)
        assert sel is not None
        pods = [p for p in self.pods.by_index(NS_INDEX, ns or "") if selects(sel, p)]
        subsets, truncated = truncate_subsets(build_subsets(svc, pods))
        labels = endpoints_labels(svc)
        annotations = dict((current.get("metadata") or {}).get("annotations") or {}) if current else {}
        if truncated:
            annotations[OVER_CAPACITY] = "truncated"
        else:
            annotations.pop(OVER_CAPACITY, None)
        if current is not None and (current.get("subsets") or []) == subsets \
                and ((current.get("metadata") or {}).get("labels") or {}) == labels \
                and ((current.get("metadata") or {}).get("annotations") or {}) == annotations:
            return
        if current is None:
            body: Obj = {"apiVersion": "v1", "kind": "Endpoints",
                         "metadata": {"name": name, "namespace": ns, "labels": labels,
                                      **({"annotations": annotations} if annotations else {})},
                         "subsets": subsets}
            try:
                self._written[key] = await self.client.create(ENDPOINTS, body, ns)
            except ApiError as e:
                if namespace_terminating(e):
                    return
                if e.status != 409:
                    raise
                # A user made one meanwhile: take it over once the informer shows it.
                self.queue.add_after(key, 0.1)
            return
        updated = dict(current)
        updated["metadata"] = dict(current.get("metadata") or {}, labels=labels, annotations=annotations)
        updated["subsets"] = subsets
        try:
            self._written[key] = await self.client.update(ENDPOINTS, updated)
        except ApiError as e:
            if e.status not in (404, 409):
                raise
            # Changed or deleted by someone else: start again from what the informer shows.
            self._written.pop(key, None)
            self.queue.add_after(key, 0.1)

    def _current(self, key: str) -> Obj | None:
        """The informer's copy, or our own last write if the informer has not shown it yet
        (acting on the older copy would only earn a conflict)."""
        cached = self.endpoints.get_by_key(key)
        mine = self._written.get(key)
        if mine is None:
            return cached
        if cached is not None and _rv(cached) >= _rv(mine):
            del self._written[key]
            return cached
        return mine

    async def _delete(self, ns: str | None, name: str) -> None:
        try:
            await self.client.delete(ENDPOINTS, name, ns)
        except ApiError as e:
            if e.status != 404:
                raise


async def run(ctx: ComponentContext) -> None:
    await EndpointsController(ctx).run()

"""The scheduler's picture of the cluster: nodes, the pods on them, and its own assumed pods.

Kept current incrementally from informer events (never rebuilt per pod) and laid out as
NumPy arrays indexed by a node "slot", so filters and scores for one pod are a handful of
vector operations over every node instead of a Python loop. A pod the scheduler has decided
on is *assumed* at once, so the next pod already sees the capacity it took — two pods are
never placed on the last free slot of a node while their bindings are still in flight.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from bosun.api.quantity import cpu_millis, to_bytes
from bosun.scheduler.podinfo import BASE_RESOURCES, HOSTNAME_LABEL, AffinityTerm, PodInfo

Obj = dict[str, Any]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
CPU, MEM, STORAGE, PODS = range(4)
Taint = tuple[str, str, str]  # key, value, effect


def _node_resources(node: Obj) -> tuple[list[int], dict[str, int]]:
    status = node.get("status") or {}
    alloc = status.get("allocatable") or status.get("capacity") or {}
    base = [0, 0, 0, 0]
    scalars: dict[str, int] = {}
    for k, v in alloc.items():
        try:
            amount = cpu_millis(v) if k == "cpu" else to_bytes(v)
        except ValueError:
            continue
        if k in BASE_RESOURCES:
            base[BASE_RESOURCES.index(k)] = amount
        else:
            scalars[k] = amount
    if "pods" not in alloc:
        base[PODS] = 110
    return base, scalars


def node_taints(node: Obj) -> tuple[Taint, ...]:
    return tuple(sorted((str(t.get("key") or ""), str(t.get("value") or ""), str(t.get("effect") or ""))
                        for t in (node.get("spec") or {}).get("taints") or []))


class Snapshot:
    def __init__(self, capacity: int = 64) -> None:
        self.cap = capacity
        self.count = 0  # slots ever used (high-water mark)
        self.index: dict[str, int] = {}
        self.names: list[str] = []
        self.free: list[int] = []
        self.nodes: list[Obj | None] = []
        self.labels: list[dict[str, str]] = []
        self.taints: list[tuple[Taint, ...]] = []
        self.valid = np.zeros(capacity, bool)
        self.unschedulable = np.zeros(capacity, bool)
        self.alloc = np.zeros((capacity, 4), np.int64)
        self.req = np.zeros((capacity, 4), np.int64)
        # alloc - req by resource, and the pod count, each contiguous over the slots: the
        # per-pod fit test and the spread ranking read whole columns, and a strided column of
        # the (slots x 4) tables costs several times more to scan.
        self.room = np.zeros((4, capacity), np.int64)
        self.npods = np.zeros(capacity, np.int64)
        self.scalar_alloc: dict[str, IntArray] = {}
        self.scalar_req: dict[str, IntArray] = {}
        self.pods: dict[str, PodInfo] = {}
        self.pod_node: dict[str, str] = {}
        self.pods_on: list[dict[str, PodInfo]] = []
        self.assumed: set[str] = set()
        self.orphans: dict[str, set[str]] = {}  # node name -> pods bound to a node we do not know
        self.owner_counts: dict[str, IntArray] = {}
        self.ports: dict[tuple[str, int], dict[int, list[str]]] = {}
        self.label_nodes: dict[str, dict[str, set[int]]] = {}
        self.taint_groups: dict[tuple[Taint, ...], set[int]] = {}
        self.pods_by_label: dict[tuple[str, str, str], set[str]] = {}
        self.pods_by_ns: dict[str, set[str]] = {}
        self.anti_groups: dict[AffinityTerm, IntArray] = {}  # existing pods' required anti-affinity
        self._label_counts: dict[tuple[str, str, str], IntArray] = {}
        self._mask_cache: dict[str, dict[str | None, BoolArray]] = {}
        self._codes_cache: dict[str, IntArray] = {}
        self._taint_idx: dict[tuple[Taint, ...], IntArray] = {}

    # ---- sizes ------------------------------------------------------------------------------

    @property
    def num_nodes(self) -> int:
        return len(self.index)

    def _grow(self) -> None:
        old, self.cap = self.cap, self.cap * 2

        def g(a: Any) -> Any:
            out = np.zeros((self.cap, *a.shape[1:]), a.dtype)
            out[:old] = a
            return out

        self.valid, self.unschedulable, self.alloc, self.req = (g(self.valid), g(self.unschedulable),
                                                                g(self.alloc), g(self.req))
        self.npods = g(self.npods)
        room = np.zeros((4, self.cap), np.int64)
        room[:, :old] = self.room
        self.room = room
        for d in (self.scalar_alloc, self.scalar_req, self.owner_counts, self.anti_groups, self._label_counts):
            for k in d:
                d[k] = g(d[k])  # type: ignore[index]
        self._mask_cache.clear()
        self._codes_cache.clear()

    # ---- nodes ------------------------------------------------------------------------------

    def set_node(self, node: Obj) -> bool:
        """Add or update a node; returns whether anything the scheduler looks at changed."""
        name = str((node.get("metadata") or {}).get("name") or "")
        idx = self.index.get(name)
        if idx is None:
            if self.free:
                idx = self.free.pop()
            else:
                if self.count == self.cap:
                    self._grow()
                idx = self.count
                self.count += 1
                self.names.append("")
                self.nodes.append(None)
                self.labels.append({})
                self.taints.append(())
                self.pods_on.append({})
            self.index[name] = idx
            self.names[idx] = name
            self.valid[idx] = True
            self.req[idx] = 0
            self._sync(idx)
            self._set_labels(idx, {})
            self._set_labels(idx, dict((node.get("metadata") or {}).get("labels") or {}))
            self._update_node(idx, node)
            for key in self.orphans.pop(name, set()):
                info = self.pods.get(key)
                if info is not None:
                    self._account(info, idx, +1)
            return True
        return self._update_node(idx, node)

    def _update_node(self, idx: int, node: Obj) -> bool:
        changed = False
        self.nodes[idx] = node
        base, scalars = _node_resources(node)
        if list(self.alloc[idx]) != base:
            self.alloc[idx] = base
            self._sync(idx)
            changed = True
        for k in set(scalars) | {k for k, a in self.scalar_alloc.items() if a[idx]}:
            arr = self._scalar(self.scalar_alloc, k)
            if arr[idx] != scalars.get(k, 0):
                arr[idx] = scalars.get(k, 0)
                changed = True
        unsched = bool((node.get("spec") or {}).get("unschedulable"))
        if self.unschedulable[idx] != unsched:
            self.unschedulable[idx] = unsched
            changed = True
        labels = dict((node.get("metadata") or {}).get("labels") or {})
        if labels != self.labels[idx]:
            self._set_labels(idx, labels)
            changed = True
        taints = node_taints(node)
        if taints != self.taints[idx]:
            self._set_taints(idx, taints)
            changed = True
        return changed

    def remove_node(self, name: str) -> None:
        idx = self.index.pop(name, None)
        if idx is None:
            return
        for key, info in list(self.pods_on[idx].items()):
            self._account(info, idx, -1)
            self.orphans.setdefault(name, set()).add(key)
        self._set_labels(idx, {})
        self._set_taints(idx, ())
        self.valid[idx] = False
        self.unschedulable[idx] = False
        self.alloc[idx] = 0
        self.req[idx] = 0
        self._sync(idx)
        for arr in self.scalar_alloc.values():
            arr[idx] = 0
        self.nodes[idx] = None
        self.names[idx] = ""
        self.free.append(idx)

    def _sync(self, idx: int) -> None:
        self.room[:, idx] = self.alloc[idx] - self.req[idx]
        self.npods[idx] = self.req[idx, PODS]

    def _scalar(self, table: dict[str, IntArray], name: str) -> IntArray:
        arr = table.get(name)
        if arr is None:
            arr = table[name] = np.zeros(self.cap, np.int64)
        return arr

    def _set_labels(self, idx: int, labels: dict[str, str]) -> None:
        old = self.labels[idx]
        for k, v in old.items():
            if labels.get(k) != v:
                vals = self.label_nodes.get(k, {})
                vals.get(v, set()).discard(idx)
                if v in vals and not vals[v]:
                    del vals[v]
                self._mask_cache.pop(k, None)
                self._codes_cache.pop(k, None)
        for k, v in labels.items():
            if old.get(k) != v:
                self.label_nodes.setdefault(k, {}).setdefault(v, set()).add(idx)
                self._mask_cache.pop(k, None)
                self._codes_cache.pop(k, None)
        self.labels[idx] = labels

    def _set_taints(self, idx: int, taints: tuple[Taint, ...]) -> None:
        old = self.taints[idx]
        if old:
            group = self.taint_groups.get(old)
            if group is not None:
                group.discard(idx)
                if not group:
                    del self.taint_groups[old]
            self._taint_idx.pop(old, None)
        if taints:
            self.taint_groups.setdefault(taints, set()).add(idx)
            self._taint_idx.pop(taints, None)
        self.taints[idx] = taints

    def has_soft_taints(self) -> bool:
        """Whether any node has a PreferNoSchedule taint (else that score is zero everywhere)."""
        return any(t[2] == "PreferNoSchedule" for taints in self.taint_groups for t in taints)

    # ---- node label queries (cached masks) -------------------------------------------------

    def _idx_mask(self, idxs: Iterable[int]) -> BoolArray:
        m = np.zeros(self.cap, bool)
        m[np.fromiter(idxs, np.int64)] = True
        return m

    def label_mask(self, key: str, value: str | None = None) -> BoolArray:
        """Nodes whose label ``key`` equals ``value`` (any value when None). Read-only."""
        per_key = self._mask_cache.setdefault(key, {})
        m = per_key.get(value)
        if m is None:
            vals = self.label_nodes.get(key, {})
            if value is None:
                m = self._idx_mask(i for s in vals.values() for i in s)
            else:
                m = self._idx_mask(vals.get(value, ()))
            per_key[value] = m
        return m

    def codes(self, key: str) -> IntArray:
        """Per node, a small integer naming its value of label ``key`` (-1 when it has none)."""
        c = self._codes_cache.get(key)
        if c is None:
            c = np.full(self.cap, -1, np.int64)
            if key == HOSTNAME_LABEL and key not in self.label_nodes:
                c[self.valid] = np.flatnonzero(self.valid)
            for code, idxs in enumerate(self.label_nodes.get(key, {}).values()):
                if idxs:
                    c[np.fromiter(idxs, np.int64)] = code
            self._codes_cache[key] = c
        return c

    def taint_indices(self, taints: tuple[Taint, ...]) -> IntArray:
        arr = self._taint_idx.get(taints)
        if arr is None:
            arr = self._taint_idx[taints] = np.fromiter(self.taint_groups.get(taints, ()), np.int64)
        return arr

    # ---- pods ------------------------------------------------------------------------------

    def add_pod(self, info: PodInfo, node: str, *, assumed: bool = False) -> None:
        """Account ``info`` on ``node`` (replacing an earlier version of the same pod)."""
        old = self.pods.get(info.key)
        if old is not None:
            if old.uid == info.uid and self.pod_node.get(info.key) == node and old.labels == info.labels:
                if not assumed:
                    self.assumed.discard(info.key)
                return  # the assumed pod was confirmed, or an update that changes nothing here
            self.remove_pod(info.key)
        self.pods[info.key] = info
        self.pod_node[info.key] = node
        if assumed:
            self.assumed.add(info.key)
        for k, v in info.labels.items():
            self.pods_by_label.setdefault((info.namespace, k, v), set()).add(info.key)
        self.pods_by_ns.setdefault(info.namespace, set()).add(info.key)
        idx = self.index.get(node)
        if idx is None:
            self.orphans.setdefault(node, set()).add(info.key)
        else:
            self._account(info, idx, +1)

    def remove_pod(self, key: str) -> PodInfo | None:
        info = self.pods.pop(key, None)
        if info is None:
            return None
        node = self.pod_node.pop(key, "")
        self.assumed.discard(key)
        for k, v in info.labels.items():
            s = self.pods_by_label.get((info.namespace, k, v))
            if s is not None:
                s.discard(key)
                if not s:
                    del self.pods_by_label[(info.namespace, k, v)]
        ns_pods = self.pods_by_ns.get(info.namespace)
        if ns_pods is not None:
            ns_pods.discard(key)
        idx = self.index.get(node)
        if idx is None:
            self.orphans.get(node, set()).discard(key)
        else:
            self._account(info, idx, -1)
        return info

    def node_of(self, key: str) -> str | None:
        return self.pod_node.get(key)

    def _account(self, info: PodInfo, idx: int, sign: int) -> None:
        r = self.req[idx]
        r[CPU] += sign * info.cpu
        r[MEM] += sign * info.memory
        r[STORAGE] += sign * info.storage
        r[PODS] += sign
        f = self.room
        f[CPU, idx] -= sign * info.cpu
        f[MEM, idx] -= sign * info.memory
        f[STORAGE, idx] -= sign * info.storage
        f[PODS, idx] -= sign
        self.npods[idx] += sign
        for rname, amount in info.scalars.items():
            self._scalar(self.scalar_req, rname)[idx] += sign * amount
        if sign > 0:
            self.pods_on[idx][info.key] = info
        else:
            self.pods_on[idx].pop(info.key, None)
        if info.owner_uid:
            counts = self.owner_counts.get(info.owner_uid)
            if counts is None:
                if sign < 0:
                    return
                counts = self.owner_counts[info.owner_uid] = np.zeros(self.cap, np.int64)
            counts[idx] += sign
            if sign < 0 and not counts.any():
                del self.owner_counts[info.owner_uid]
        for proto, port, ip in info.host_ports:
            per_node = self.ports.setdefault((proto, port), {})
            ips = per_node.setdefault(idx, [])
            if sign > 0:
                ips.append(ip)
            else:
                if ip in ips:
                    ips.remove(ip)
                if not ips:
                    del per_node[idx]
                if not per_node:
                    del self.ports[(proto, port)]
        for k, v in info.labels.items():
            arr = self._label_counts.get((info.namespace, k, v))
            if arr is not None:
                arr[idx] += sign
        for term in info.anti_affinity:
            group = self.anti_groups.get(term)
            if group is None:
                if sign < 0:
                    continue
                group = self.anti_groups[term] = np.zeros(self.cap, np.int64)
            group[idx] += sign
            if sign < 0 and not group.any():
                del self.anti_groups[term]

    # ---- pod queries -----------------------------------------------------------------------

    def label_counts(self, namespace: str, key: str, value: str) -> IntArray:
        """Per node, how many pods of ``namespace`` carry label ``key=value`` (kept incrementally)."""
        arr = self._label_counts.get((namespace, key, value))
        if arr is None:
            arr = np.zeros(self.cap, np.int64)
            for pkey in self.pods_by_label.get((namespace, key, value), ()):
                idx = self.index.get(self.pod_node.get(pkey, ""))
                if idx is not None:
                    arr[idx] += 1
            self._label_counts[(namespace, key, value)] = arr
        return arr

    def matching_counts(self, term: AffinityTerm) -> IntArray:
        """Per node, how many assigned pods match ``term`` (its selector and namespaces)."""
        sel = term.selector
        reqs = sel.requirements
        namespaces = list(self.pods_by_ns) if term.namespaces is None else list(term.namespaces)
        if sel.nothing:
            return np.zeros(self.cap, np.int64)
        if len(reqs) == 1 and reqs[0].op in ("=", "==", "in") and len(reqs[0].values) == 1:
            value = next(iter(reqs[0].values))
            total = np.zeros(self.cap, np.int64)
            for ns in namespaces:
                total += self.label_counts(ns, reqs[0].key, value)
            return total
        out = np.zeros(self.cap, np.int64)
        for ns in namespaces:
            for pkey in self.pods_by_ns.get(ns, ()):
                info = self.pods[pkey]
                if sel.matches(info.labels):
                    idx = self.index.get(self.pod_node.get(pkey, ""))
                    if idx is not None:
                        out[idx] += 1
        return out

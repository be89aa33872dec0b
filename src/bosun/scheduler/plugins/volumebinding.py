"""Pods go where their volumes are (Kubernetes' VolumeBinding filter).

A local-path volume lives on one node, so a pod whose claim is bound to it may only run
there; putting it elsewhere after a restart would start it without its data. Per claim:

- missing: the pod fits nowhere (``persistentvolumeclaim "x" not found``) until it appears;
- bound to a volume with a nodeAffinity: only the nodes matching it;
- unbound, WaitForFirstConsumer: any node, and the node chosen becomes the claim's
  ``volume.kubernetes.io/selected-node`` (the provisioner makes the volume there); until the
  volume exists, later pods using the claim are held to that node too;
- unbound, Immediate: the pod waits for the claim to be bound
  (``pod has unbound immediate PersistentVolumeClaims``).

Only pods with claims pay for any of this (``relevant``); the rest skip the plugin.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from bosun.api.defaults.storage import DEFAULT_CLASS, IMMEDIATE, binding_mode, claim_class_name
from bosun.scheduler.framework import CycleState, FilterResult
from bosun.scheduler.plugins.nodeaffinity import term_mask
from bosun.scheduler.podinfo import PodInfo
from bosun.scheduler.snapshot import BoolArray, Snapshot

Obj = dict[str, Any]
SELECTED_NODE = "volume.kubernetes.io/selected-node"
NODE_CONFLICT = "node(s) had volume node affinity conflict"
PV_MISSING = "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)"
UNBOUND_IMMEDIATE = "pod has unbound immediate PersistentVolumeClaims"


class Lister(Protocol):
    """Read access to one kind of object (an Informer is one)."""

    def get(self, namespace: str | None, name: str) -> Obj | None: ...


class VolumeBinding:
    name = "VolumeBinding"

    def __init__(self, claims: Lister, volumes: Lister, classes: Lister) -> None:
        self.claims = claims
        self.volumes = volumes
        self.classes = classes
        # claim key -> node chosen for it while its volume is not yet provisioned
        self.assumed: dict[str, str] = {}

    def relevant(self, pod: PodInfo) -> bool:
        return bool(pod.claims)

    def filter(self, pod: PodInfo, snap: Snapshot, state: CycleState) -> FilterResult | None:
        ok: BoolArray | None = None
        unbound: list[str] = []
        for name in pod.claims:
            pvc = self.claims.get(pod.namespace, name)
            if pvc is None:
                return _whole_pod(snap, f'persistentvolumeclaim "{name}" not found')
            if (pvc.get("metadata") or {}).get("deletionTimestamp"):
                return _whole_pod(snap, f'persistentvolumeclaim "{name}" is being deleted')
            volume = str((pvc.get("spec") or {}).get("volumeName") or "")
            if volume:
                pv = self.volumes.get(None, volume)
                if pv is None:
                    return FilterResult(np.zeros(snap.cap, bool), PV_MISSING)
                mask = _affinity_mask(pv, snap)
            else:
                class_name = claim_class_name(pvc)
                sc = self.classes.get(None, class_name) if class_name else None
                if sc is None and class_name not in ("", DEFAULT_CLASS):
                    return _whole_pod(snap, f'storageclass.storage.k8s.io "{class_name}" not found')
                if binding_mode(pvc, sc) == IMMEDIATE:
                    return _whole_pod(snap, UNBOUND_IMMEDIATE)
                unbound.append(name)
                mask = self._selected_mask(pod.namespace, pvc, snap)
            if mask is not None:
                ok = mask if ok is None else ok & mask
        state.data[self.name] = unbound
        return None if ok is None else FilterResult(ok, NODE_CONFLICT)

    def _selected_mask(self, namespace: str, pvc: Obj, snap: Snapshot) -> BoolArray | None:
        """The node an unbound claim is promised to, if that node still exists."""
        name = str((pvc.get("metadata") or {}).get("name") or "")
        node = self.assumed.get(f"{namespace}/{name}") or \
            ((pvc.get("metadata") or {}).get("annotations") or {}).get(SELECTED_NODE)
        idx = snap.index.get(str(node)) if node else None
        if idx is None:
            return None
        mask = np.zeros(snap.cap, bool)
        mask[idx] = True
        return mask

    def assume(self, pod: PodInfo, node: str, state: CycleState) -> list[str]:
        """The pod goes to ``node``: its unbound claims are promised to it. Returns the claims
        whose selected-node annotation must be (re)written."""
        out: list[str] = []
        for name in state.data.get(self.name) or ():
            key = f"{pod.namespace}/{name}"
            pvc = self.claims.get(pod.namespace, name)
            ann = ((pvc or {}).get("metadata") or {}).get("annotations") or {}
            self.assumed[key] = node
            if ann.get(SELECTED_NODE) != node:
                out.append(name)
        return out

    def claim_changed(self, pvc: Obj) -> None:
        """Forget a promise once the claim is bound (its volume's affinity rules then), carries
        the annotation, or is gone."""
        meta = pvc.get("metadata") or {}
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        node = self.assumed.get(key)
        if node is None:
            return
        if (pvc.get("spec") or {}).get("volumeName") or meta.get("deletionTimestamp") or \
                (meta.get("annotations") or {}).get(SELECTED_NODE) == node:
            del self.assumed[key]

    def claim_deleted(self, pvc: Obj) -> None:
        meta = pvc.get("metadata") or {}
        self.assumed.pop(f"{meta.get('namespace')}/{meta.get('name')}", None)


def _whole_pod(snap: Snapshot, message: str) -> FilterResult:
    return FilterResult(np.zeros(snap.cap, bool), message, whole_pod=message)


def _affinity_mask(pv: Obj, snap: Snapshot) -> BoolArray | None:
    """Nodes a volume can be reached from (None: any node)."""
    terms = ((((pv.get("spec") or {}).get("nodeAffinity") or {}).get("required") or {})
             .get("nodeSelectorTerms"))
    if not terms:
        return None
    mask = np.zeros(snap.cap, bool)
    for term in terms:
        mask |= term_mask(snap, term)
    return mask

"""The ``local-path`` provisioner: PersistentVolumeClaims backed by a directory on one node.

A claim is ours when its StorageClass names the provisioner ``bosun.io/local-path`` (the
server creates such a default class, ``local-path``, and gives it to claims that name no
class); claims with no class at all, or naming ``local-path`` while that class is missing,
stay ours as before classes were served. The class's ``volumeBindingMode`` decides when the
volume is made: ``WaitForFirstConsumer`` (the default class's mode, as Rancher's local-path
provisioner) waits until the scheduler picks a node for a pod using the claim, and makes the
volume on that node (``volume.kubernetes.io/selected-node``, which the scheduler sets, else
the node of the first bound pod), so that the pod can reach it; ``Immediate`` provisions at
once, on the selected node or else the first Ready node. The claim annotation
``bosun.io/volume-binding-mode`` still overrides the class's mode (older manifests use it).

The PersistentVolume gets ``spec.hostPath.path`` = ``<node's local-path root>/<pv name>``
(the agent advertises its root in the Node annotation ``bosun.io/local-path-root``), a
nodeAffinity to that node (the scheduler keeps the claim's later pods there) and a claimRef;
the agent creates the directory when a pod mounts it, and removes directories whose
PersistentVolume is gone. Its reclaim policy is the class's (``bosun.io/reclaim-policy`` on
the claim overrides it): a claim deleted under Delete takes its volume with it; under Retain
the volume becomes Released.
"""

from __future__ import annotations

import logging
from typing import Any

from bosun.api.defaults.storage import (
    DEFAULT_CLASS,
    IMMEDIATE,
    LOCAL_PROVISIONER,
    binding_mode,
    claim_class_name,
    is_local_path,
    reclaim_policy,
)
from bosun.client.errors import ApiError
from bosun.component import ComponentContext
from bosun.controllers._common import NODES, PODS, Controller, Obj, key_of, resource, split_key

log = logging.getLogger(__name__)

PVCS = resource("", "v1", "persistentvolumeclaims")
PVS = resource("", "v1", "persistentvolumes")
CLASSES = resource("storage.k8s.io", "v1", "storageclasses")
CLASS = DEFAULT_CLASS
PROVISIONER = LOCAL_PROVISIONER
ROOT_ANNOTATION = "bosun.io/local-path-root"
SELECTED_NODE = "volume.kubernetes.io/selected-node"
DEFAULT_ROOT = "/var/lib/bosun/volumes"
CLAIM_INDEX = "localpath-claims"
PV_PREFIX = "pv:"


def _claims_of(pod: Obj) -> list[str]:
    ns = (pod.get("metadata") or {}).get("namespace")
    return [f"{ns}/{v['persistentVolumeClaim'].get('claimName')}"
            for v in (pod.get("spec") or {}).get("volumes") or [] if v.get("persistentVolumeClaim")]


def _ready(node: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


class LocalPathProvisioner(Controller):
    """Keyed by claim (``ns/name``) and by volume (``pv:<name>``)."""

    name = "local-path-provisioner"

    def __init__(self, ctx: ComponentContext) -> None:
        super().__init__(ctx)
        self.pvcs = ctx.informers.get(PVCS)
        self.pvs = ctx.informers.get(PVS)
        self.pods = ctx.informers.get(PODS)
        self.nodes = ctx.informers.get(NODES)
        self.classes = ctx.informers.get(CLASSES)
        self.pods.add_index(CLAIM_INDEX, _claims_of)
        self.pvcs.add_handler(self.enqueue, lambda old, new: self.enqueue(new), self._claim_deleted)
        self.pvs.add_handler(self._pv_seen, lambda old, new: self._pv_seen(new))
        self.pods.add_handler(self._pod_seen, lambda old, new: self._pod_seen(new))
        self.classes.add_handler(lambda sc: self._pending_again(), lambda old, new: self._pending_again())
        self.nodes.add_handler(lambda n: self._node_changed(None, n), self._node_changed)

    def _pending_again(self) -> None:
        """A class or a Ready node appeared: claims waiting for one may proceed now."""
        for pvc in self.pvcs.list():
            if (pvc.get("status") or {}).get("phase") != "Bound":
                self.enqueue(pvc)

    def _node_changed(self, old: Obj | None, new: Obj) -> None:
        if _ready(new) and (old is None or not _ready(old)):
            self._pending_again()

    def _class_of(self, pvc: Obj) -> Obj | None:
        name = claim_class_name(pvc)
        return self.classes.get(None, name) if name else None

    def _pod_seen(self, pod: Obj) -> None:
        if (pod.get("spec") or {}).get("nodeName"):
            for key in _claims_of(pod):
                self.queue.add(key)

    def _pv_seen(self, pv: Obj) -> None:
        self.queue.add(PV_PREFIX + str(pv["metadata"]["name"]))

    def _claim_deleted(self, pvc: Obj) -> None:
        volume = (pvc.get("spec") or {}).get("volumeName")
        if volume:
            self.queue.add(PV_PREFIX + str(volume))

    async def reconcile(self, key: str) -> None:
        if key.startswith(PV_PREFIX):
            await self._reconcile_volume(key[len(PV_PREFIX):])
        else:
            await self._reconcile_claim(key)

    # -- claims -----------------------------------------------------------------------------------

    async def _reconcile_claim(self, key: str) -> None:
        ns, name = split_key(key)
        pvc = self.pvcs.get(ns, name)
        if pvc is None or (pvc.get("metadata") or {}).get("deletionTimestamp"):
            return
        sc = self._class_of(pvc)
        if not is_local_path(pvc, sc) or (pvc.get("status") or {}).get("phase") == "Bound":
            return
        volume = str((pvc.get("spec") or {}).get("volumeName") or "")
        if volume:
            pv = self.pvs.get(None, volume)
            if pv is not None:
                await self._bind(pvc, pv)
            return
        node = self._node_for(pvc, sc)
        if not node:
            return  # WaitForFirstConsumer: the scheduler's choice or a bound pod queues us again
        pv = await self._provision(pvc, node, sc)
        await self._bind(pvc, pv)
        self.recorder.event(pvc, "Normal", "ProvisioningSucceeded",
                            f"Successfully provisioned volume {pv['metadata']['name']} on node {node}")

    def _node_for(self, pvc: Obj, sc: Obj | None) -> str:
        meta = pvc.get("metadata") or {}
        ann = meta.get("annotations") or {}
        if ann.get(SELECTED_NODE):
            return str(ann[SELECTED_NODE])
        users = [p for p in self.pods.by_index(CLAIM_INDEX, key_of(pvc))
                 if (p.get("spec") or {}).get("nodeName") and not (p.get("metadata") or {}).get("deletionTimestamp")]
        if users:
            users.sort(key=lambda p: str(p["metadata"].get("creationTimestamp") or ""))
            return str(users[0]["spec"]["nodeName"])
        if binding_mode(pvc, sc) == IMMEDIATE:
            ready = sorted(str(n["metadata"]["name"]) for n in self.nodes.list() if _ready(n))
            return ready[0] if ready else ""
        return ""

    async def _provision(self, pvc: Obj, node: str, sc: Obj | None) -> Obj:
        meta = pvc["metadata"]
        spec = pvc.get("spec") or {}
        pv_name = f"pvc-{meta['uid']}"
        existing = self.pvs.get(None, pv_name)
        if existing is not None:
            return existing
        node_obj = self.nodes.get(None, node) or {}
        root = ((node_obj.get("metadata") or {}).get("annotations") or {}).get(ROOT_ANNOTATION) or DEFAULT_ROOT
        size = ((spec.get("resources") or {}).get("requests") or {}).get("storage") or "1Gi"
        policy = reclaim_policy(pvc, sc)
        body: dict[str, Any] = {
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": pv_name, "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER,
                                                          "local.path.provisioner/selected-node": node}},
            "spec": {
                "capacity": {"storage": size},
                "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": policy,
                "storageClassName": claim_class_name(pvc) or CLASS,
                "volumeMode": spec.get("volumeMode") or "Filesystem",
                # Kubernetes' local-path provisioner writes hostPath too (spec.local would need
                # the API to accept it as a PersistentVolume source).
                "hostPath": {"path": f"{str(root).rstrip('/')}/{pv_name}", "type": "DirectoryOrCreate"},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}},
                "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": meta["namespace"],
                             "name": meta["name"], "uid": meta["uid"]},
            },
        }
        try:
            return await self.client.create(PVS, body)
        except ApiError as e:
            if e.status != 409:
                raise
            return await self.client.get(PVS, pv_name)

    async def _bind(self, pvc: Obj, pv: Obj) -> None:
        meta = pvc["metadata"]
        pv_name = str(pv["metadata"]["name"])
        pv_spec = pv.get("spec") or {}
        if not pv_spec.get("claimRef"):
            pv = await self.client.patch(PVS, pv_name, {"spec": {"claimRef": {
                "apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": meta["namespace"],
                "name": meta["name"], "uid": meta["uid"]}}})
        if (pv.get("status") or {}).get("phase") != "Bound":
            await self.client.patch(PVS, pv_name, {"status": {"phase": "Bound"}}, subresource="status")
        annotations = {"pv.kubernetes.io/bind-completed": "yes", "pv.kubernetes.io/bound-by-controller": "yes"}
        node = ((pv.get("metadata") or {}).get("annotations") or {}).get("local.path.provisioner/selected-node")
        if node:
            annotations[SELECTED_NODE] = node
        await self.client.patch(PVCS, meta["name"], {"metadata": {"annotations": annotations},
                                                     "spec": {"volumeName": pv_name}}, meta["namespace"])
        await self.client.patch(PVCS, meta["name"], {"status": {
            "phase": "Bound", "accessModes": pv_spec.get("accessModes") or ["ReadWriteOnce"],
            "capacity": pv_spec.get("capacity") or {}}}, meta["namespace"], subresource="status")

    # -- volumes ----------------------------------------------------------------------------------

    async def _reconcile_volume(self, name: str) -> None:
        pv = self.pvs.get(None, name)
        if pv is None or (pv.get("metadata") or {}).get("deletionTimestamp"):
            return
        ann = (pv.get("metadata") or {}).get("annotations") or {}
        ref = (pv.get("spec") or {}).get("claimRef") or {}
        if ann.get("pv.kubernetes.io/provisioned-by") != PROVISIONER or not ref:
            return
        claim = self.pvcs.get(ref.get("namespace"), str(ref.get("name")))
        if claim is not None and claim["metadata"].get("uid") == ref.get("uid"):
            return
        try:  # the informer may lag behind a claim just created
            claim = await self.client.get(PVCS, str(ref.get("name")), ref.get("namespace"))
            if claim["metadata"].get("uid") == ref.get("uid"):
                return
        except ApiError as e:
            if e.status != 404:
                raise
        if (pv.get("spec") or {}).get("persistentVolumeReclaimPolicy") == "Delete":
            try:
                await self.client.delete(PVS, name)
            except ApiError as e:
                if e.status != 404:
                    raise
        elif (pv.get("status") or {}).get("phase") != "Released":
            await self.client.patch(PVS, name, {"status": {"phase": "Released"}}, subresource="status")


async def run(ctx: ComponentContext) -> None:
    await LocalPathProvisioner(ctx).run()

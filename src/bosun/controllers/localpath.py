"""The ``local-path`` provisioner: PersistentVolumeClaims backed by a directory on one node.

There is no StorageClass resource: a claim whose ``storageClassName`` (or the older
``volume.beta.kubernetes.io/storage-class`` annotation) is ``local-path`` or empty (the
default class) is ours. Binding waits for the first consumer, as Rancher's local-path
provisioner does: only once a pod using the claim is bound to a node is the volume made,
on that node, so that the pod can reach it. The annotation
``bosun.io/volume-binding-mode: Immediate`` provisions at once, on the node named by
``volume.kubernetes.io/selected-node`` or else the first Ready node.

The PersistentVolume gets ``spec.hostPath.path`` = ``<node's local-path root>/<pv name>``
(the agent advertises its root in the Node annotation ``bosun.io/local-path-root``), a
nodeAffinity to that node and a claimRef; the agent creates the directory when a pod mounts
it, and removes directories whose PersistentVolume is gone. A claim deleted under
reclaimPolicy Delete takes its volume with it; under Retain the volume becomes Released.
"""

from __future__ import annotations

import logging
from typing import Any

from bosun.client.errors import ApiError
from bosun.controllers._common import NODES, PODS, Controller, Obj, key_of, resource, split_key
from bosun.controlplane import ComponentContext

log = logging.getLogger(__name__)

PVCS = resource("", "v1", "persistentvolumeclaims")
PVS = resource("", "v1", "persistentvolumes")
CLASS = "local-path"
PROVISIONER = "bosun.io/local-path"
ROOT_ANNOTATION = "bosun.io/local-path-root"
MODE_ANNOTATION = "bosun.io/volume-binding-mode"
SELECTED_NODE = "volume.kubernetes.io/selected-node"
DEFAULT_ROOT = "/var/lib/bosun/volumes"
CLAIM_INDEX = "localpath-claims"
PV_PREFIX = "pv:"


def storage_class(pvc: Obj) -> str:
    ann = (pvc.get("metadata") or {}).get("annotations") or {}
    return str((pvc.get("spec") or {}).get("storageClassName")
               or ann.get("volume.beta.kubernetes.io/storage-class")
               or ann.get("volume.kubernetes.io/storage-class") or "")


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
        self.pods.add_index(CLAIM_INDEX, _claims_of)
        self.pvcs.add_handler(self.enqueue, lambda old, new: self.enqueue(new), self._claim_deleted)
        self.pvs.add_handler(self._pv_seen, lambda old, new: self._pv_seen(new))
        self.pods.add_handler(self._pod_seen, lambda old, new: self._pod_seen(new))

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
        if storage_class(pvc) not in ("", CLASS) or (pvc.get("status") or {}).get("phase") == "Bound":
            return
        volume = str((pvc.get("spec") or {}).get("volumeName") or "")
        if volume:
            pv = self.pvs.get(None, volume)
            if pv is not None:
                await self._bind(pvc, pv)
            return
        node = self._node_for(pvc)
        if not node:
            return  # WaitForFirstConsumer: a pod bound to a node will queue us again
        pv = await self._provision(pvc, node)
        await self._bind(pvc, pv)
        self.recorder.event(pvc, "Normal", "ProvisioningSucceeded",
                            f"Successfully provisioned volume {pv['metadata']['name']} on node {node}")

    def _node_for(self, pvc: Obj) -> str:
        meta = pvc.get("metadata") or {}
        ann = meta.get("annotations") or {}
        if ann.get(SELECTED_NODE):
            return str(ann[SELECTED_NODE])
        users = [p for p in self.pods.by_index(CLAIM_INDEX, key_of(pvc))
                 if (p.get("spec") or {}).get("nodeName") and not (p.get("metadata") or {}).get("deletionTimestamp")]
        if users:
            users.sort(key=lambda p: str(p["metadata"].get("creationTimestamp") or ""))
            return str(users[0]["spec"]["nodeName"])
        if ann.get(MODE_ANNOTATION) == "Immediate":
            ready = sorted(str(n["metadata"]["name"]) for n in self.nodes.list() if _ready(n))
            return ready[0] if ready else ""
        return ""

    async def _provision(self, pvc: Obj, node: str) -> Obj:
        meta = pvc["metadata"]
        spec = pvc.get("spec") or {}
        pv_name = f"pvc-{meta['uid']}"
        existing = self.pvs.get(None, pv_name)
        if existing is not None:
            return existing
        node_obj = self.nodes.get(None, node) or {}
        root = ((node_obj.get("metadata") or {}).get("annotations") or {}).get(ROOT_ANNOTATION) or DEFAULT_ROOT
        size = ((spec.get("resources") or {}).get("requests") or {}).get("storage") or "1Gi"
        policy = ((meta.get("annotations") or {}).get("bosun.io/reclaim-policy")) or "Delete"
        body: dict[str, Any] = {
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": pv_name, "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER,
                                                          "local.path.provisioner/selected-node": node}},
            "spec": {
                "capacity": {"storage": size},
                "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": policy,
                "storageClassName": CLASS,
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

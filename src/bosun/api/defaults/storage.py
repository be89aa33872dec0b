"""StorageClass defaults, the built-in ``local-path`` class, and what a claim's class means.

Kept here, apart from the provisioner and the scheduler, because three parts must agree on
it: the API server (defaulting, the DefaultStorageClass admission, the class it creates at
first start), the local-path provisioner and the scheduler's volume binding filter.
"""

from __future__ import annotations

from typing import Any

from bosun.api.defaults.pod import _set

Obj = dict[str, Any]

DEFAULT_CLASS = "local-path"
LOCAL_PROVISIONER = "bosun.io/local-path"
DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"
BETA_DEFAULT_CLASS_ANNOTATION = "storageclass.beta.kubernetes.io/is-default-class"
# Before StorageClass was served, a claim chose Immediate binding with this annotation.
MODE_ANNOTATION = "bosun.io/volume-binding-mode"
IMMEDIATE = "Immediate"
WAIT = "WaitForFirstConsumer"


def default_storage_class(obj: Obj) -> None:
    _set(obj, "reclaimPolicy", "Delete")
    _set(obj, "volumeBindingMode", IMMEDIATE)


def local_path_class() -> Obj:
    """The class the server creates at first start (as k3s and kind ship one)."""
    return {
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": DEFAULT_CLASS, "annotations": {DEFAULT_CLASS_ANNOTATION: "true"}},
        "provisioner": LOCAL_PROVISIONER, "reclaimPolicy": "Delete", "volumeBindingMode": WAIT,
        "allowVolumeExpansion": False,
    }


def is_default_class(sc: Obj) -> bool:
    ann = (sc.get("metadata") or {}).get("annotations") or {}
    return "true" in (ann.get(DEFAULT_CLASS_ANNOTATION), ann.get(BETA_DEFAULT_CLASS_ANNOTATION))


def pick_default(classes: list[Obj]) -> Obj | None:
    """Kubernetes' choice among several default classes: the newest, then the name first in order."""
    defaults = [c for c in classes if is_default_class(c)]
    if not defaults:
        return None
    defaults.sort(key=lambda c: str(c["metadata"].get("name") or ""))
    defaults.sort(key=lambda c: str(c["metadata"].get("creationTimestamp") or ""), reverse=True)
    return defaults[0]


def claim_class_name(pvc: Obj) -> str:
    """The class a claim names (spec field, or the older annotations); "" for none."""
    ann = (pvc.get("metadata") or {}).get("annotations") or {}
    return str((pvc.get("spec") or {}).get("storageClassName")
               or ann.get("volume.beta.kubernetes.io/storage-class")
               or ann.get("volume.kubernetes.io/storage-class") or "")


def is_local_path(pvc: Obj, sc: Obj | None) -> bool:
    """Whether the local-path provisioner serves ``pvc`` (whose class object is ``sc``).

    Claims with no class, and ``local-path`` claims while that class is missing, stay ours as
    before classes were served; any other class is ours when it names our provisioner."""
    name = claim_class_name(pvc)
    if sc is None:
        return name in ("", DEFAULT_CLASS)
    return sc.get("provisioner") == LOCAL_PROVISIONER


def binding_mode(pvc: Obj, sc: Obj | None) -> str:
    """Immediate or WaitForFirstConsumer: the claim's compatibility annotation (from before
    classes were served, and claims now get the default class), else the class's mode, else
    WaitForFirstConsumer (the local-path default)."""
    ann = (pvc.get("metadata") or {}).get("annotations") or {}
    if ann.get(MODE_ANNOTATION) in (IMMEDIATE, WAIT):
        return str(ann[MODE_ANNOTATION])
    if sc is not None:
        return str(sc.get("volumeBindingMode") or IMMEDIATE)
    return WAIT


def reclaim_policy(pvc: Obj, sc: Obj | None) -> str:
    ann = (pvc.get("metadata") or {}).get("annotations") or {}
    if ann.get("bosun.io/reclaim-policy"):
        return str(ann["bosun.io/reclaim-policy"])
    return str((sc or {}).get("reclaimPolicy") or "Delete")


def default_csi_driver(obj: Obj) -> None:
    """SetDefaults_CSIDriver of Kubernetes 1.32 (SELinuxMountReadWriteOncePod on)."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    for name, value in (("attachRequired", True), ("podInfoOnMount", False), ("storageCapacity", False),
                        ("fsGroupPolicy", "ReadWriteOnceWithFSType"), ("requiresRepublish", False),
                        ("seLinuxMount", False)):
        _set(spec, name, value)
    if not spec.get("volumeLifecycleModes"):
        spec["volumeLifecycleModes"] = ["Persistent"]

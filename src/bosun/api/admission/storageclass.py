"""Kubernetes' DefaultStorageClass admission."""

from __future__ import annotations

from bosun.api.admission.base import CREATE, Operation, Reader, Request
from bosun.api.defaults.storage import pick_default
from bosun.api.registry import Resource, must_by_plural

CLAIMS = must_by_plural("", "v1", "persistentvolumeclaims")
STORAGE_CLASSES = must_by_plural("storage.k8s.io", "v1", "storageclasses")
BETA_ANNOTATION = "volume.beta.kubernetes.io/storage-class"


class DefaultStorageClass:
    """A claim that names no class (the field absent, not "") gets the default class, so
    Helm charts that rely on one work."""

    name = "DefaultStorageClass"
    mutating = True

    def __init__(self, reader: Reader) -> None:
        self.reader = reader

    def handles(self, res: Resource, operation: Operation, subresource: str | None) -> bool:
        return res == CLAIMS and operation == CREATE and subresource is None

    async def admit(self, req: Request) -> None:
        spec = req.obj.get("spec")
        ann = (req.obj.get("metadata") or {}).get("annotations") or {}
        if not isinstance(spec, dict) or "storageClassName" in spec or BETA_ANNOTATION in ann:
            return
        classes, _, _ = await self.reader.list(STORAGE_CLASSES, None)
        default = pick_default(classes)
        if default is not None:
            spec["storageClassName"] = default["metadata"]["name"]

"""What every mode shares: the workload's metadata and selector, and the replica count."""

from __future__ import annotations

from bosun.compose import normalize
from bosun.compose.errors import ComposeError
from bosun.compose.translate.context import JSON, MODE_ANNOTATION, Service, split_labels


def metadata(svc: Service) -> JSON:
    meta = svc.metadata()
    labels, annotations = split_labels(normalize.list_or_dict(svc.deploy.get("labels")))
    meta["labels"].update(labels)
    meta["annotations"] = {**annotations, MODE_ANNOTATION: svc.mode, **svc.workload_annotations}
    return meta


def replicas(svc: Service, default: int = 1) -> int:
    value = svc.deploy.get("replicas", svc.spec.get("scale", default))
    n = normalize.to_int(value, f"{svc.where}.deploy.replicas")
    if n < 0:
        raise ComposeError(f"{svc.where}.deploy.replicas must be 0 or more, not {n}")
    return n


def workload(api_version: str, kind: str, svc: Service, spec: JSON) -> JSON:
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata(svc), "spec": spec}

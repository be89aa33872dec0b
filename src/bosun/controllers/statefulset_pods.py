"""A StatefulSet pod's identity: its ordinal name, labels, hostname, and the
PersistentVolumeClaims it keeps across replacements; and the status counts over those pods.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from bosun.controllers._common import (
    is_pod_available,
    is_pod_ready,
    is_terminating,
    owner_ref,
    pod_from_template,
)

Obj = dict[str, Any]

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
REVISION_LABEL = "controller-revision-hash"

_ORDINAL = re.compile(r"^(.*)-(\d+)$")


def ordinal_of(sts_name: str, pod: Obj) -> int:
    """The pod's ordinal, or -1 when its name is not ``<sts>-<n>``."""
    m = _ORDINAL.match((pod.get("metadata") or {}).get("name") or "")
    if m is None or m.group(1) != sts_name:
        return -1
    return int(m.group(2))


def revision_of(pod: Obj) -> str:
    return str(((pod.get("metadata") or {}).get("labels") or {}).get(REVISION_LABEL) or "")


def is_running_and_ready(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and is_pod_ready(pod)


def is_finished(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Failed", "Succeeded")


def claim_name(template_name: str, sts: Obj, ordinal: int) -> str:
    return f"{template_name}-{sts['metadata']['name']}-{ordinal}"


def claims_for(sts: Obj, ordinal: int) -> list[Obj]:
    """The PersistentVolumeClaims the pod at ``ordinal`` needs, as they would be created."""
    spec = sts.get("spec") or {}
    match = dict(((spec.get("selector") or {}).get("matchLabels")) or {})
    policy = spec.get("persistentVolumeClaimRetentionPolicy") or {}
    out = []
    for tmpl in spec.get("volumeClaimTemplates") or []:
        tm = tmpl.get("metadata") or {}
        meta: Obj = {"name": claim_name(tm.get("name", ""), sts, ordinal),
                     "namespace": sts["metadata"]["namespace"],
                     "labels": {**(tm.get("labels") or {}), **match}}
        if tm.get("annotations"):
            meta["annotations"] = dict(tm["annotations"])
        if policy.get("whenDeleted") == "Delete":
            # Owned (not controlled) by the set: deleting the set deletes its claims.
            meta["ownerReferences"] = [owner_ref(sts, controller=False)]
        out.append({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta,
                    "spec": copy.deepcopy(tmpl.get("spec") or {})})
    return out


def new_pod(sts: Obj, template: Obj, revision: str, ordinal: int) -> Obj:
    """The pod for ``ordinal`` built from ``template`` (of revision ``revision``)."""
    meta = sts["metadata"]
    name = f"{meta['name']}-{ordinal}"
    pod = pod_from_template(template, sts, name=name, extra_labels={
        POD_NAME_LABEL: name, POD_INDEX_LABEL: str(ordinal), REVISION_LABEL: revision})
    spec = pod["spec"]
    spec["hostname"] = name
    service = (sts.get("spec") or {}).get("serviceName")
    if service:
        spec["subdomain"] = service
    volumes = [v for v in spec.get("volumes") or []]
    for tmpl in (sts.get("spec") or {}).get("volumeClaimTemplates") or []:
        vname = (tmpl.get("metadata") or {}).get("name", "")
        volumes = [v for v in volumes if v.get("name") != vname]
        volumes.append({"name": vname, "persistentVolumeClaim": {"claimName": claim_name(vname, sts, ordinal)}})
    if volumes:
        spec["volumes"] = volumes
    return pod


def replica_status(sts: Obj, pods: list[Obj], current: str, update: str, at: Any = None) -> Obj:
    """Kubernetes' replica counts over every pod the set owns."""
    min_ready = int((sts.get("spec") or {}).get("minReadySeconds") or 0)
    st = {"replicas": 0, "readyReplicas": 0, "availableReplicas": 0, "currentReplicas": 0, "updatedReplicas": 0}
    for pod in pods:
        st["replicas"] += 1
        if is_running_and_ready(pod):
            st["readyReplicas"] += 1
            if is_pod_available(pod, min_ready, at):
                st["availableReplicas"] += 1
        if not is_terminating(pod):
            rev = revision_of(pod)
            if rev == current:
                st["currentReplicas"] += 1
            if rev == update:
                st["updatedReplicas"] += 1
    return st

"""``meta.k8s.io/v1`` Table responses, so ``kubectl get`` prints the columns users know.

kubectl asks the server for a Table and prints it as is; the columns (names, order, which
ones only ``-o wide`` shows) and the cell texts (pod STATUS, RESTARTS ``3 (5m ago)``, AGE
``2d3h``) are those of Kubernetes' own printers. As in Kubernetes, the server always fills
every column; kubectl hides priority-1 columns unless asked for ``-o wide``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from bosun.api.registry import Resource
from bosun.api.tables.certificates import csr_row
from bosun.api.tables.cluster import (
    POD_SELECTOR_DESC,
    apiservice_row,
    configmap_row,
    crd_row,
    default_row,
    endpoints_row,
    event_row,
    hpa_row,
    ingress_row,
    ingressclass_row,
    lease_row,
    namespace_row,
    networkpolicy_row,
    node_row,
    pdb_row,
    priorityclass_row,
    pv_row,
    pvc_row,
    secret_row,
    service_row,
    serviceaccount_row,
    storageclass_row,
    webhooks_row,
)
from bosun.api.tables.format import AGE, CONTAINERS, IMAGES, NAME, SELECTOR, Cells, Obj, col, human_duration
from bosun.api.tables.format import parse_time as parse_time
from bosun.api.tables.pods import pod_conditions, pod_row
from bosun.api.tables.policy import PRINTERS as POLICY_PRINTERS
from bosun.api.tables.quota import PRINTERS as QUOTA_PRINTERS
from bosun.api.tables.rbac import BINDING_COLUMNS, ROLE_COLUMNS, binding_row, role_row
from bosun.api.tables.workloads import (
    controllerrevision_row,
    cronjob_row,
    daemonset_row,
    deployment_row,
    job_row,
    replicaset_row,
    replicationcontroller_row,
    statefulset_row,
)

Printer = Callable[[Obj, datetime], Cells]

_I = "integer"
_PRINTERS: dict[tuple[str, str], tuple[list[Obj], Printer]] = {
    ("", "Pod"): (
        [
            NAME,
            col("Ready"),
            col("Status"),
            col("Restarts"),
            AGE,
            col("IP", priority=1),
            col("Node", priority=1),
            col("Nominated Node", priority=1),
            col("Readiness Gates", priority=1),
        ],
        pod_row,
    ),
    ("apps", "Deployment"): (
        [NAME, col("Ready"), col("Up-to-date"), col("Available"), AGE, CONTAINERS, IMAGES, SELECTOR],
        deployment_row,
    ),
    ("apps", "ReplicaSet"): (
        [NAME, col("Desired", _I), col("Current", _I), col("Ready", _I), AGE, CONTAINERS, IMAGES, SELECTOR],
        replicaset_row,
    ),
    ("", "ReplicationController"): (
        [NAME, col("Desired", _I), col("Current", _I), col("Ready", _I), AGE, CONTAINERS, IMAGES, SELECTOR],
        replicationcontroller_row,
    ),
    ("apps", "StatefulSet"): ([NAME, col("Ready"), AGE, CONTAINERS, IMAGES], statefulset_row),
    ("apps", "DaemonSet"): (
        [
            NAME,
            col("Desired", _I),
            col("Current", _I),
            col("Ready", _I),
            col("Up-to-date", _I),
            col("Available", _I),
            col("Node Selector"),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ],
        daemonset_row,
    ),
    ("apps", "ControllerRevision"): (
        [NAME, col("Controller"), col("Revision", _I), AGE],
        controllerrevision_row,
    ),
    ("batch", "Job"): (
        [NAME, col("Status"), col("Completions"), col("Duration"), AGE, CONTAINERS, IMAGES, SELECTOR],
        job_row,
    ),
    ("batch", "CronJob"): (
        [
            NAME,
            col("Schedule"),
            col("Timezone"),
            col("Suspend", "boolean"),
            col("Active", _I),
            col("Last Schedule"),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ],
        cronjob_row,
    ),
    ("", "Service"): (
        [
            NAME,
            col("Type"),
            col("Cluster-IP"),
            col("External-IP"),
            col("Port(s)"),
            AGE,
            col("Selector", priority=1),
        ],
        service_row,
    ),
    ("", "Endpoints"): ([NAME, col("Endpoints"), AGE], endpoints_row),
    ("networking.k8s.io", "Ingress"): (
        [NAME, col("Class"), col("Hosts"), col("Address"), col("Ports"), AGE],
        ingress_row,
    ),
    ("networking.k8s.io", "IngressClass"): (
        [NAME, col("Controller"), col("Parameters"), AGE], ingressclass_row,
    ),
    ("networking.k8s.io", "NetworkPolicy"): (
        [NAME, col("Pod-Selector", desc=POD_SELECTOR_DESC), AGE], networkpolicy_row,
    ),
    ("policy", "PodDisruptionBudget"): (
        [NAME, col("Min Available"), col("Max Unavailable"), col("Allowed Disruptions", _I), AGE], pdb_row,
    ),
    ("", "ConfigMap"): ([NAME, col("Data", _I), AGE], configmap_row),
    ("", "Secret"): ([NAME, col("Type"), col("Data", _I), AGE], secret_row),
    ("", "Namespace"): ([NAME, col("Status"), AGE], namespace_row),
    ("", "ServiceAccount"): ([NAME, col("Secrets", _I), AGE], serviceaccount_row),
    ("coordination.k8s.io", "Lease"): ([NAME, col("Holder"), AGE], lease_row),
    ("apiregistration.k8s.io", "APIService"): ([NAME, col("Service"), col("Available"), AGE], apiservice_row),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"): ([NAME, col("Webhooks", _I), AGE],
                                                                         webhooks_row),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"): ([NAME, col("Webhooks", _I), AGE],
                                                                       webhooks_row),
    ("apiextensions.k8s.io", "CustomResourceDefinition"): ([NAME, col("Created At", "date")], crd_row),
    ("scheduling.k8s.io", "PriorityClass"): (
        [NAME, col("Value", _I), col("Global-Default", "boolean"), col("PreemptionPolicy"), AGE],
        priorityclass_row,
    ),
    ("rbac.authorization.k8s.io", "Role"): (ROLE_COLUMNS, role_row),
    ("rbac.authorization.k8s.io", "ClusterRole"): (ROLE_COLUMNS, role_row),
    ("rbac.authorization.k8s.io", "RoleBinding"): (BINDING_COLUMNS, binding_row),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): (BINDING_COLUMNS, binding_row),
    ("storage.k8s.io", "StorageClass"): (
        [NAME, col("Provisioner"), col("ReclaimPolicy"), col("VolumeBindingMode"), col("AllowVolumeExpansion"),
         AGE],
        storageclass_row,
    ),
    ("", "Node"): (
        [
            NAME,
            col("Status"),
            col("Roles"),
            AGE,
            col("Version"),
            col("Internal-IP", priority=1),
            col("External-IP", priority=1),
            col("OS-Image", priority=1),
            col("Kernel-Version", priority=1),
            col("Container-Runtime", priority=1),
        ],
        node_row,
    ),
    ("", "Event"): (
        [
            col("Last Seen"),
            col("Type"),
            col("Reason"),
            col("Object"),
            col("Subobject", priority=1),
            col("Source", priority=1),
            col("Message"),
            col("First Seen", priority=1),
            col("Count", priority=1),
            col("Name", priority=1, fmt="name"),
        ],
        event_row,
    ),
    ("", "PersistentVolumeClaim"): (
        [
            NAME,
            col("Status"),
            col("Volume"),
            col("Capacity"),
            col("Access Modes"),
            col("StorageClass"),
            col("VolumeAttributesClass"),
            AGE,
            col("VolumeMode", priority=1),
        ],
        pvc_row,
    ),
    ("", "PersistentVolume"): (
        [
            NAME,
            col("Capacity"),
            col("Access Modes"),
            col("Reclaim Policy"),
            col("Status"),
            col("Claim"),
            col("StorageClass"),
            col("VolumeAttributesClass"),
            col("Reason"),
            AGE,
            col("VolumeMode", priority=1),
        ],
        pv_row,
    ),
    ("certificates.k8s.io", "CertificateSigningRequest"): (
        [NAME, AGE, col("SignerName"), col("Requestor"), col("RequestedDuration"), col("Condition")],
        csr_row,
    ),
    ("autoscaling", "HorizontalPodAutoscaler"): (
        [
            NAME,
            col("Reference"),
            col("Targets"),
            col("MinPods"),
            col("MaxPods", _I),
            col("Replicas", _I),
            AGE,
        ],
        hpa_row,
    ),
}
_PRINTERS.update(POLICY_PRINTERS)
_PRINTERS.update(QUOTA_PRINTERS)
_DEFAULT_PRINTER: tuple[list[Obj], Printer] = ([NAME, AGE], default_row)
# Kinds whose rows also carry conditions (kubectl marks a terminating pod's row with them).
_ROW_CONDITIONS: dict[tuple[str, str], Callable[[Obj], list[Obj] | None]] = {("", "Pod"): pod_conditions}


def column_definitions(resource: Resource) -> list[Obj]:
    """The columns ``kubectl get`` shows for this resource (priority 1: only with ``-o wide``)."""
    if resource.custom is not None:
        return resource.custom.table_columns()
    return [dict(c) for c in _PRINTERS.get((resource.group, resource.kind), _DEFAULT_PRINTER)[0]]


def _row_object(resource: Resource, obj: Obj, include_object: str) -> Obj | None:
    if include_object == "None":
        return None
    if include_object == "Object":
        return obj
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata") or {},
    }


def to_table(
    resource: Resource, objects: list[Obj], *, include_object: str = "Metadata", now: datetime | None = None
) -> Obj:
    """Render objects as a ``Table``; the caller fills ``metadata.resourceVersion``/``continue``."""
    if include_object not in ("None", "Metadata", "Object"):
        raise ValueError(
            f'includeObject: Unsupported value: "{include_object}": '
            'supported values: "None", "Metadata", "Object"'
        )
    now = now or datetime.now(UTC)
    columns, printer = _PRINTERS.get((resource.group, resource.kind), _DEFAULT_PRINTER)
    if resource.custom is not None:  # a CRD's additionalPrinterColumns
        columns, printer = resource.custom.table_columns(), resource.custom.table_cells
    conditions = _ROW_CONDITIONS.get((resource.group, resource.kind))
    rows: list[Obj] = []
    for obj in objects:
        row: Obj = {"cells": printer(obj, now)}
        if conditions is not None and (conds := conditions(obj)):
            row["conditions"] = conds
        ref = _row_object(resource, obj, include_object)
        if ref is not None:
            row["object"] = ref
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": [dict(c) for c in columns],
        "rows": rows,
    }


__all__ = ["column_definitions", "human_duration", "parse_time", "to_table"]

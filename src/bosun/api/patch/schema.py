"""Strategic-merge metadata: which lists merge, and by which key, for each kind we serve.

Kubernetes reads this from struct tags (``patchStrategy``/``patchMergeKey``) on its Go types.
We have no Go types, so this is a small hand-written copy of those tags for the paths that
matter. Anything not listed behaves as Kubernetes treats untagged fields: maps merge key by
key and lists are replaced whole (atomic).
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dc_field


@dataclass(frozen=True, slots=True)
class FieldMeta:
    """Patch metadata of one field.

    ``merge`` marks a list merged rather than replaced; ``key`` is its patchMergeKey (empty for
    a list of primitives merged as a set). ``sub`` is the schema of the field's map, or of the
    list's items.
    """

    merge: bool = False
    key: str = ""
    sub: Schema = dc_field(default_factory=dict)


Schema = dict[str, FieldMeta]
EMPTY: Schema = {}


def _list(key: str = "", item: Schema | None = None) -> FieldMeta:
    return FieldMeta(merge=True, key=key, sub=item or {})


def _map(sub: Schema) -> FieldMeta:
    return FieldMeta(sub=sub)


_CONTAINER: Schema = {
    "ports": _list("containerPort"),
    "env": _list("name"),
    "volumeMounts": _list("mountPath"),
    "volumeDevices": _list("devicePath"),
    # args, command, envFrom, resizePolicy: atomic
}

POD_SPEC: Schema = {
    "containers": _list("name", _CONTAINER),
    "initContainers": _list("name", _CONTAINER),
    "ephemeralContainers": _list("name", _CONTAINER),
    "volumes": _list("name"),
    "imagePullSecrets": _list("name"),
    "hostAliases": _list("ip"),
    "topologySpreadConstraints": _list("topologyKey"),
    "schedulingGates": _list("name"),
    "resourceClaims": _list("name"),
    # tolerations, readinessGates: atomic
}

_POD_STATUS: Schema = {
    "conditions": _list("type"),
    "podIPs": _list("ip"),
    "hostIPs": _list("ip"),
    "resourceClaimStatuses": _list("name"),
}

OBJECT_META: Schema = {
    "finalizers": _list(),
    "ownerReferences": _list("uid"),
}

_TEMPLATE: Schema = {"metadata": _map(OBJECT_META), "spec": _map(POD_SPEC)}
_CONDITIONS: Schema = {"conditions": _list("type")}
_WORKLOAD: Schema = {
    "metadata": _map(OBJECT_META),
    "spec": _map({"template": _map(_TEMPLATE)}),
    "status": _map(_CONDITIONS),
}
_JOB_TEMPLATE: Schema = {"metadata": _map(OBJECT_META), "spec": _map({"template": _map(_TEMPLATE)})}


def _kind(**fields: FieldMeta) -> Schema:
    return {"metadata": _map(OBJECT_META), **fields}


_BY_KIND: dict[tuple[str, str], Schema] = {
    ("", "Pod"): _kind(spec=_map(POD_SPEC), status=_map(_POD_STATUS)),
    ("", "Node"): _kind(
        # NodeSpec.taints carries no patch tags in Kubernetes: it is atomic.
        spec=_map({"podCIDRs": _list()}),
        status=_map({"conditions": _list("type"), "addresses": _list("type")}),
    ),
    ("", "Service"): _kind(spec=_map({"ports": _list("port")}), status=_map(_CONDITIONS)),
    ("", "Namespace"): _kind(status=_map(_CONDITIONS)),
    ("", "PersistentVolumeClaim"): _kind(status=_map(_CONDITIONS)),
    ("", "ServiceAccount"): _kind(secrets=_list("name")),
    ("apps", "Deployment"): _WORKLOAD,
    ("apps", "ReplicaSet"): _WORKLOAD,
    ("apps", "StatefulSet"): _WORKLOAD,
    ("apps", "DaemonSet"): _WORKLOAD,
    ("batch", "Job"): _WORKLOAD,
    ("batch", "CronJob"): _kind(
        spec=_map({"jobTemplate": _map(_JOB_TEMPLATE)}),
    ),
    ("autoscaling", "HorizontalPodAutoscaler"): _kind(status=_map(_CONDITIONS)),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"): _kind(webhooks=_list("name")),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"): _kind(webhooks=_list("name")),
}

_DEFAULT: Schema = _kind()


def schema_for(group: str, kind: str) -> Schema:
    """Top-level schema of a kind; unknown kinds still get ObjectMeta's merge rules."""
    return _BY_KIND.get((group, kind), _DEFAULT)

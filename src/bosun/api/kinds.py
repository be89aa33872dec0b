"""The built-in kinds as names and paths: group, version, plural, scope, short names.

This is what a client needs to address an object (the CLI, the agent, the controllers), and
nothing of what the server does on a write. :mod:`bosun.api.registry` pairs each row with
its strategy and converter; keeping the two apart lets ``bosun stack deploy`` start without
importing the server's validation and defaulting code.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True, eq=False)
class Kind:
    group: str  # "" for the core group
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()  # e.g. "status", "scale", "binding", "log", "eviction"
    verbs: tuple[str, ...] = (
        "create", "delete", "deletecollection", "get", "list", "patch", "update", "watch",
    )
    # Kinds whose spec changes bump metadata.generation; others bump on any non-metadata change.
    has_spec: bool = True
    list_kind: str = ""
    # (parent plural, subresource): creating one of these is that subresource's write on the
    # parent the body names (POST .../bindings is POST .../pods/{name}/binding).
    created_as: tuple[str, str] | None = None

    # A row of this table and the server's row for the same kind (a subclass that adds the
    # strategy) are one key in a dict: a client's informers are shared whoever looked the kind up.
    # The key and its hash are computed once: rows are dict keys on every request's path.
    _key: tuple[object, ...] = field(init=False, repr=False)
    _hash: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        key = (self.group, self.version, self.kind, self.plural, self.namespaced, self.short_names,
               self.categories, self.subresources, self.verbs, self.has_spec, self.created_as)
        object.__setattr__(self, "_key", key)
        object.__setattr__(self, "_hash", hash(key))

    def __eq__(self, other: object) -> bool:
        return self is other or (isinstance(other, Kind) and self._hash == other._hash and self._key == other._key)

    def __hash__(self) -> int:
        return self._hash

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def api_version(self) -> str:
        return self.group_version

    @property
    def list_kind_name(self) -> str:
        return self.list_kind or f"{self.kind}List"

    def key_prefix(self, namespace: str | None = None) -> str:
        """Store prefix for every object of this resource (in one namespace when given)."""
        base = f"/registry/{self.group_plural}/"
        if self.namespaced and namespace:
            return f"{base}{namespace}/"
        return base

    @property
    def group_plural(self) -> str:
        """Storage name; includes the group so two groups' plurals never collide."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def key(self, namespace: str | None, name: str) -> str:
        if self.namespaced:
            return f"/registry/{self.group_plural}/{namespace}/{name}"
        return f"/registry/{self.group_plural}/{name}"


_ALL = ("all",)

KINDS: tuple[Kind, ...] = (
    # core/v1
    Kind("", "v1", "Namespace", "namespaces", False, ("ns",),
         subresources=("status", "finalize"),
         verbs=("create", "delete", "get", "list", "patch", "update", "watch")),
    Kind("", "v1", "Pod", "pods", True, ("po",), _ALL,
         subresources=("status", "binding", "log", "eviction", "exec", "attach", "portforward",
                       "ephemeralcontainers")),
    Kind("", "v1", "Service", "services", True, ("svc",), _ALL, subresources=("status",)),
    Kind("", "v1", "Endpoints", "endpoints", True, ("ep",), has_spec=False),
    Kind("", "v1", "ConfigMap", "configmaps", True, ("cm",), has_spec=False),
    Kind("", "v1", "Secret", "secrets", True, (), has_spec=False),
    Kind("", "v1", "Event", "events", True, ("ev",), has_spec=False),
    Kind("", "v1", "Node", "nodes", False, ("no",), subresources=("status",)),
    Kind("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True, ("pvc",),
         subresources=("status",)),
    Kind("", "v1", "PersistentVolume", "persistentvolumes", False, ("pv",),
         subresources=("status",)),
    Kind("", "v1", "ServiceAccount", "serviceaccounts", True, ("sa",), has_spec=False,
         subresources=("token",)),
    Kind("", "v1", "ReplicationController", "replicationcontrollers", True, ("rc",), _ALL,
         subresources=("status", "scale")),
    Kind("", "v1", "PodTemplate", "podtemplates", True, (), has_spec=False),
    Kind("", "v1", "ResourceQuota", "resourcequotas", True, ("quota",), subresources=("status",)),
    Kind("", "v1", "LimitRange", "limitranges", True, ("limits",)),
    # Binding is create-only: POSTing one assigns a pod to a node (older clients' way to bind).
    Kind("", "v1", "Binding", "bindings", True, (), has_spec=False, verbs=("create",),
         created_as=("pods", "binding")),
    # apps/v1
    Kind("apps", "v1", "Deployment", "deployments", True, ("deploy",), _ALL,
         subresources=("status", "scale")),
    Kind("apps", "v1", "ReplicaSet", "replicasets", True, ("rs",), _ALL,
         subresources=("status", "scale")),
    Kind("apps", "v1", "StatefulSet", "statefulsets", True, ("sts",), _ALL,
         subresources=("status", "scale")),
    Kind("apps", "v1", "DaemonSet", "daemonsets", True, ("ds",), _ALL,
         subresources=("status",)),
    Kind("apps", "v1", "ControllerRevision", "controllerrevisions", True, (), has_spec=False),
    # batch/v1
    Kind("batch", "v1", "Job", "jobs", True, (), _ALL, subresources=("status",)),
    Kind("batch", "v1", "CronJob", "cronjobs", True, ("cj",), _ALL, subresources=("status",)),
    # networking.k8s.io/v1
    Kind("networking.k8s.io", "v1", "Ingress", "ingresses", True, ("ing",),
         subresources=("status",)),
    Kind("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", True, ("netpol",)),
    Kind("networking.k8s.io", "v1", "IngressClass", "ingressclasses", False, ()),
    # policy/v1
    Kind("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", True, ("pdb",),
         subresources=("status",)),
    # autoscaling/v2
    Kind("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", True,
             ("hpa",), _ALL, subresources=("status",)),
    # autoscaling/v1 (`kubectl autoscale` writes it): the same objects, converted to and from v2.
    Kind("autoscaling", "v1", "HorizontalPodAutoscaler", "horizontalpodautoscalers", True,
             ("hpa",), _ALL, subresources=("status",)),
    # discovery.k8s.io/v1
    Kind("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", True, (), has_spec=False),
    # coordination.k8s.io/v1
    Kind("coordination.k8s.io", "v1", "Lease", "leases", True, ()),
    # events.k8s.io/v1: the core/v1 Events themselves, seen through another group's fields.
    Kind("events.k8s.io", "v1", "Event", "events", True, ("ev",), has_spec=False),
    # certificates.k8s.io/v1
    Kind("certificates.k8s.io", "v1", "CertificateSigningRequest", "certificatesigningrequests", False,
             ("csr",), subresources=("status", "approval")),
    # scheduling.k8s.io/v1
    Kind("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", False, ("pc",),
         has_spec=False),
    # node.k8s.io/v1
    Kind("node.k8s.io", "v1", "RuntimeClass", "runtimeclasses", False, (), has_spec=False),
    # storage.k8s.io/v1
    Kind("storage.k8s.io", "v1", "StorageClass", "storageclasses", False, ("sc",),
         has_spec=False),
    Kind("storage.k8s.io", "v1", "CSIDriver", "csidrivers", False, ()),
    # apiextensions.k8s.io/v1: the CustomResourceDefinition itself; the custom resources it
    # defines are served from bosun.api.catalog once it is Established.
    Kind("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", False,
             ("crd", "crds"), subresources=("status",)),
    # apiregistration.k8s.io/v1: which server serves each group version (this one: Local)
    Kind("apiregistration.k8s.io", "v1", "APIService", "apiservices", False, (), ("api-extensions",),
         subresources=("status",)),
    # admissionregistration.k8s.io/v1 webhooks: the admission chain calls them (bosun.api.admission.webhooks)
    Kind("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration",
             "validatingwebhookconfigurations", False, (), ("api-extensions",), has_spec=False),
    Kind("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration",
             "mutatingwebhookconfigurations", False, (), ("api-extensions",), has_spec=False),
    # admissionregistration.k8s.io/v1: CEL admission policies, enforced by
    # bosun.api.admission.policy from the watch cache.
    Kind("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicy", "validatingadmissionpolicies", False,
             (), ("api-extensions",), subresources=("status",)),
    Kind("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicyBinding",
             "validatingadmissionpolicybindings", False, (), ("api-extensions",)),
    # flowcontrol.apiserver.k8s.io/v1: API Priority and Fairness objects, served and kept
    # (bosun.api.flowcontrol); requests are not throttled by them.
    Kind("flowcontrol.apiserver.k8s.io", "v1", "FlowSchema", "flowschemas", False, (),
         subresources=("status",)),
    Kind("flowcontrol.apiserver.k8s.io", "v1", "PriorityLevelConfiguration", "prioritylevelconfigurations",
             False, (), subresources=("status",)),
    # rbac.authorization.k8s.io/v1 (who may do what; read by the RBAC authorizer from the watch cache)
    Kind("rbac.authorization.k8s.io", "v1", "Role", "roles", True, (), has_spec=False),
    Kind("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False, (), has_spec=False),
    Kind("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True, (), has_spec=False),
    Kind("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False, (),
         has_spec=False),
)

_BY_GVR: dict[tuple[str, str, str], Kind] = {(k.group, k.version, k.plural): k for k in KINDS}
_BY_GVK: dict[tuple[str, str, str], Kind] = {(k.group, k.version, k.kind): k for k in KINDS}


def by_plural(group: str, version: str, plural: str) -> Kind | None:
    return _BY_GVR.get((group, version, plural))


def must_by_plural(group: str, version: str, plural: str) -> Kind:
    """:func:`by_plural` for a resource the code is written against: a misspelt name fails
    where it is looked up (mostly at import), not later as a ``None``."""
    res = _BY_GVR.get((group, version, plural))
    assert res is not None, plural
    return res


def by_kind(api_version: str, kind: str) -> Kind | None:
    """Look up by an object's apiVersion ("v1", "apps/v1") and kind."""
    group, _, version = api_version.rpartition("/")
    return _BY_GVK.get((group, version, kind))


def find(name: str) -> Kind | None:
    """Resolve what a user types (`po`, `pods`, `pod`, `Deployment`, `deployments.apps`)."""
    name_l = name.lower()
    plural, _, group = name_l.partition(".")
    for k in KINDS:
        if group and k.group != group:
            continue
        if plural in (k.plural, k.singular) or plural in k.short_names:
            return k
    return None

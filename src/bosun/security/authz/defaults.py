"""The ClusterRoles and bindings every cluster starts with (Kubernetes' bootstrap policy).

Users know these names: ``cluster-admin``, ``admin``, ``edit``, ``view`` (the last three
aggregated from ``system:aggregate-to-*`` roles, so they grow with extra kinds), and the
``system:discovery`` / ``system:basic-user`` / ``system:public-info-viewer`` roles that let
any authenticated user read discovery and ask ``kubectl auth can-i``. Roles carrying the
annotation ``rbac.authorization.kubernetes.io/autoupdate: "true"`` are put back to these
contents at start, as kube-apiserver does; set it to "false" to keep local edits.
"""

from __future__ import annotations

from typing import Any

from bosun.security.authz.rules import rule, url_rule
from bosun.security.identity import AUTHENTICATED, BOOTSTRAPPERS, MASTERS, NODES

API = "rbac.authorization.k8s.io/v1"
AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"
NODE_CREDENTIAL_PATH = "/bosun/v1/node-credentials"
# A machine holding a swarm join token asks here which role it joins as (bosun.api.swarm_endpoints).
SWARM_JOIN_PATH = "/bosun/v1/swarm/join"
# A worker that ``bosun node promote`` made a manager asks here for what a manager joins with.
SWARM_PROMOTION_PATH = "/bosun/v1/swarm/promotion"

_CERTS = "certificates.k8s.io"
_SIGNERS = ("kubernetes.io/kube-apiserver-client", "kubernetes.io/kube-apiserver-client-kubelet",
            "kubernetes.io/kubelet-serving")

READ = ("get", "list", "watch")
WRITE = ("create", "delete", "deletecollection", "patch", "update")
ALL = READ + WRITE

_VIEW_CORE = ("configmaps", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status", "pods",
              "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts", "services",
              "services/status", "bindings", "events", "limitranges", "namespaces/status", "pods/log",
              "pods/status", "replicationcontrollers/status", "resourcequotas", "resourcequotas/status",
              "namespaces")
_APPS = ("controllerrevisions", "daemonsets", "daemonsets/status", "deployments", "deployments/scale",
         "deployments/status", "replicasets", "replicasets/scale", "replicasets/status", "statefulsets",
         "statefulsets/scale", "statefulsets/status")
_VIEW_OTHER = (
    rule(READ, ["apps"], _APPS),
    rule(READ, ["autoscaling"], ["horizontalpodautoscalers", "horizontalpodautoscalers/status"]),
    rule(READ, ["batch"], ["cronjobs", "cronjobs/status", "jobs", "jobs/status"]),
    rule(READ, ["networking.k8s.io"], ["ingresses", "ingresses/status", "networkpolicies"]),
    rule(READ, ["policy"], ["poddisruptionbudgets", "poddisruptionbudgets/status"]),
    rule(READ, ["discovery.k8s.io"], ["endpointslices"]),
)
_EDIT = (
    rule(["create", "delete", "deletecollection", "patch", "update", "get", "list", "watch"], [""],
         ["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"]),
    rule(["create"], [""], ["pods/eviction"]),
    rule(ALL, [""], ["configmaps", "events", "persistentvolumeclaims", "replicationcontrollers",
                     "replicationcontrollers/scale", "secrets", "serviceaccounts", "services", "services/proxy"]),
    rule(["create"], [""], ["serviceaccounts/token"]),
    rule(ALL, ["apps"], [r for r in _APPS if not r.endswith("/status")]),
    rule(ALL, ["autoscaling"], ["horizontalpodautoscalers"]),
    rule(ALL, ["batch"], ["cronjobs", "jobs"]),
    rule(ALL, ["networking.k8s.io"], ["ingresses", "networkpolicies"]),
    rule(ALL, ["policy"], ["poddisruptionbudgets"]),
    rule(ALL, ["discovery.k8s.io"], ["endpointslices"]),
    rule(["impersonate"], [""], ["serviceaccounts"]),
)
_ADMIN = (
    rule(ALL, ["rbac.authorization.k8s.io"], ["rolebindings", "roles"]),
    rule(["create"], ["authorization.k8s.io"], ["localsubjectaccessreviews"]),
)


def _meta(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    m: dict[str, Any] = {"name": name, "annotations": {AUTOUPDATE: "true"},
                         "labels": {"kubernetes.io/bootstrapping": "rbac-defaults", **(labels or {})}}
    return m


def cluster_role(name: str, rules: list[dict[str, Any]] | tuple[dict[str, Any], ...],
                 labels: dict[str, str] | None = None, aggregate: str = "") -> dict[str, Any]:
    role: dict[str, Any] = {"apiVersion": API, "kind": "ClusterRole", "metadata": _meta(name, labels),
                            "rules": list(rules)}
    if aggregate:
        role["aggregationRule"] = {"clusterRoleSelectors": [
            {"matchLabels": {f"rbac.authorization.k8s.io/aggregate-to-{aggregate}": "true"}}]}
        role["rules"] = []  # filled by aggregation
    return role


def cluster_binding(name: str, role: str, groups: tuple[str, ...] = (), users: tuple[str, ...] = ()) -> dict[str, Any]:
    subjects = [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g} for g in groups]
    subjects += [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": u} for u in users]
    return {"apiVersion": API, "kind": "ClusterRoleBinding", "metadata": _meta(name),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": subjects}


def _agg(to: str) -> dict[str, str]:
    return {f"rbac.authorization.k8s.io/aggregate-to-{to}": "true"}


def default_cluster_roles() -> list[dict[str, Any]]:
    view = [rule(READ, [""], _VIEW_CORE), *_VIEW_OTHER]
    return [
        cluster_role("cluster-admin", [rule(["*"], ["*"], ["*"]), url_rule(["*"], ["*"])]),
        cluster_role("admin", [], aggregate="admin"),
        cluster_role("edit", [], _agg("admin"), aggregate="edit"),
        cluster_role("view", [], _agg("edit"), aggregate="view"),
        cluster_role("system:aggregate-to-admin", list(_ADMIN), _agg("admin")),
        cluster_role("system:aggregate-to-edit", list(_EDIT), _agg("edit")),
        cluster_role("system:aggregate-to-view", view, _agg("view")),
        cluster_role("system:discovery", [url_rule(["get"], [
            "/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*",
            "/readyz", "/version", "/version/"])]),
        cluster_role("system:public-info-viewer", [url_rule(["get"], [
            "/healthz", "/livez", "/readyz", "/version", "/version/"])]),
        cluster_role("system:basic-user", [
            rule(["create"], ["authorization.k8s.io"], ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]),
            rule(["create"], ["authentication.k8s.io"], ["selfsubjectreviews"]),
        ]),
        cluster_role("system:bosun:node-bootstrapper", [
            url_rule(["post"], [NODE_CREDENTIAL_PATH, SWARM_JOIN_PATH, SWARM_PROMOTION_PATH])]),
        cluster_role("system:monitoring", [url_rule(["get"], ["/metrics", "/livez", "/readyz", "/healthz"])]),
        # Upstream's certificate roles: bind one to let a user approve a built-in signer's requests.
        cluster_role("system:node-bootstrapper", [rule(["create", "get", "list", "watch"], [_CERTS],
                                                       ["certificatesigningrequests"])]),
        *(cluster_role(f"system:certificates.k8s.io:{signer.rpartition('/')[2]}-approver",
                       [rule(["approve"], [_CERTS], ["signers"], [signer])])
          for signer in _SIGNERS),
        # What the csrapproving controller asks for before approving a kubelet client request:
        # bind nodeclient to bootstrappers, selfnodeclient to nodes (upstream binds neither).
        *(cluster_role(f"system:certificates.k8s.io:certificatesigningrequests:{sub}",
                       [rule(["create"], [_CERTS], [f"certificatesigningrequests/{sub}"])])
          for sub in ("nodeclient", "selfnodeclient")),
    ]


def default_cluster_role_bindings() -> list[dict[str, Any]]:
    return [
        cluster_binding("cluster-admin", "cluster-admin", groups=(MASTERS,)),
        cluster_binding("system:discovery", "system:discovery", groups=(AUTHENTICATED,)),
        cluster_binding("system:basic-user", "system:basic-user", groups=(AUTHENTICATED,)),
        cluster_binding("system:public-info-viewer", "system:public-info-viewer", groups=(AUTHENTICATED,)),
        cluster_binding("system:bosun:node-bootstrapper", "system:bosun:node-bootstrapper",
                        groups=(BOOTSTRAPPERS, NODES)),  # nodes renew only their own (reviews.py)
    ]

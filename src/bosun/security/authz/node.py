"""The node authorizer and node restriction: a node's credential reaches only its own things.

A node agent (user ``system:node:<name>`` in ``system:nodes``) may:

- read, cluster-wide, what the node's network parts need (as kube-proxy and CNI agents
  can): Nodes (the overlay's peers), Services, Endpoints, EndpointSlices (the proxy, DNS),
  Namespaces, Pods and NetworkPolicies (policy selects pods by their labels and their
  namespace's; DNS names StatefulSet pods), and the ConfigMap kube-system/bosun-network
  (the cluster's network settings);
- delete or write the status of Pods bound to it only;
- get another Secret, ConfigMap or PersistentVolumeClaim only when a Pod bound to it uses it, and a
  PersistentVolume only when such a claim is bound to it (PersistentVolumes may also be
  listed: the agent removes local volumes whose PV is gone; a PV holds no secret data);
- create, update, patch and delete only its own Node and its own Lease in
  ``kube-node-lease`` (:func:`admit_create` checks the name in a create's body, as
  Kubernetes' NodeRestriction admission does);
- create and update Events;
- ask for ServiceAccount tokens bound to pods bound to it (the TokenRequest endpoint checks
  the binding, as Kubernetes' NodeRestriction does).

The pod -> node and pod -> secret/configmap/claim relations are kept in a graph fed by the
watch cache (as Kubernetes' node authorizer graph), so a question is a few dict lookups.
Anything else gets no opinion here, and RBAC (which binds nothing to ``system:nodes``)
refuses it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bosun.network.config import CONFIGMAP_NAME, CONFIGMAP_NAMESPACE
from bosun.security.authz import ALLOW, NO_OPINION, Attributes, Decision, Verdict

Obj = dict[str, Any]
NODE_LEASE_NAMESPACE = "kube-node-lease"
READ = frozenset({"get", "list", "watch"})
REFERENCED = {"secrets": "secret", "configmaps": "configmap", "persistentvolumeclaims": "pvc"}


def pod_references(pod: Obj) -> Iterator[tuple[str, str]]:
    """(kind, name) of every Secret, ConfigMap and claim a pod uses, as the agent reads them."""
    spec = pod.get("spec") or {}
    for s in spec.get("imagePullSecrets") or []:
        if s.get("name"):
            yield "secret", s["name"]
    for v in spec.get("volumes") or []:
        if (v.get("secret") or {}).get("secretName"):
            yield "secret", v["secret"]["secretName"]
        if (v.get("configMap") or {}).get("name"):
            yield "configmap", v["configMap"]["name"]
        if (v.get("persistentVolumeClaim") or {}).get("claimName"):
            yield "pvc", v["persistentVolumeClaim"]["claimName"]
        for src in (v.get("projected") or {}).get("sources") or []:
            if (src.get("secret") or {}).get("name"):
                yield "secret", src["secret"]["name"]
            if (src.get("configMap") or {}).get("name"):
                yield "configmap", src["configMap"]["name"]
    for group in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(group) or []:
            for e in c.get("envFrom") or []:
                if (e.get("secretRef") or {}).get("name"):
                    yield "secret", e["secretRef"]["name"]
                if (e.get("configMapRef") or {}).get("name"):
                    yield "configmap", e["configMapRef"]["name"]
            for e in c.get("env") or []:
                ref = e.get("valueFrom") or {}
                if (ref.get("secretKeyRef") or {}).get("name"):
                    yield "secret", ref["secretKeyRef"]["name"]
                if (ref.get("configMapKeyRef") or {}).get("name"):
                    yield "configmap", ref["configMapKeyRef"]["name"]


def _deny(reason: str) -> Verdict:
    return Verdict(Decision.NO_OPINION, reason)


class NodeAuthorizer:
    def __init__(self) -> None:
        # pod (namespace, name) -> node it is bound to ("" if none) and what it references
        self._pods: dict[tuple[str, str], tuple[str, frozenset[tuple[str, str]]]] = {}
        # (kind, namespace, name) -> {node: number of its pods using it}
        self._refs: dict[tuple[str, str, str], dict[str, int]] = {}
        # PersistentVolume name -> claims (namespace, name) bound to it
        self._pv_claims: dict[str, set[tuple[str, str]]] = {}
        self._claim_pv: dict[tuple[str, str], str] = {}
        self._revisions: dict[str, int] = {}

    # -- the graph ---------------------------------------------------------------------

    def _fresh(self, key: str, revision: int) -> bool:
        if revision < self._revisions.get(key, 0):
            return False
        self._revisions[key] = revision
        return True

    def observe_pod(self, key: str, namespace: str, name: str, pod: Obj | None, revision: int) -> None:
        if not self._fresh(key, revision):
            return
        old = self._pods.pop((namespace, name), None)
        if old is not None:
            for kind, ref in old[1]:
                nodes = self._refs.get((kind, namespace, ref))
                if nodes is not None and old[0]:
                    nodes[old[0]] -= 1
                    if nodes[old[0]] <= 0:
                        del nodes[old[0]]
                    if not nodes:
                        del self._refs[(kind, namespace, ref)]
        if pod is None:
            self._revisions.pop(key, None)
            return
        node = str((pod.get("spec") or {}).get("nodeName") or "")
        refs = frozenset(pod_references(pod)) if node else frozenset()
        self._pods[(namespace, name)] = (node, refs)
        for kind, ref in refs:
            nodes = self._refs.setdefault((kind, namespace, ref), {})
            nodes[node] = nodes.get(node, 0) + 1

    def observe_claim(self, key: str, namespace: str, name: str, pvc: Obj | None, revision: int) -> None:
        if not self._fresh(key, revision):
            return
        old = self._claim_pv.pop((namespace, name), None)
        if old is not None:
            self._pv_claims.get(old, set()).discard((namespace, name))
        volume = str(((pvc or {}).get("spec") or {}).get("volumeName") or "")
        if volume:
            self._claim_pv[(namespace, name)] = volume
            self._pv_claims.setdefault(volume, set()).add((namespace, name))

    def _uses(self, node: str, kind: str, namespace: str, name: str) -> bool:
        return node in self._refs.get((kind, namespace, name), ())

    def _owns_pod(self, node: str, namespace: str, name: str) -> bool | None:
        """True/False for a pod we know; None for one that does not exist (the request
        then answers 404 rather than a 403 that would hide nothing anyway)."""
        known = self._pods.get((namespace, name))
        return None if known is None else known[0] == node

    # -- questions ---------------------------------------------------------------------

    def authorize(self, a: Attributes) -> Verdict:
        node = a.user.node_name
        if node is None or not a.resource_request:
            return NO_OPINION
        g, r, verb, sub = a.api_group, a.resource, a.verb, a.subresource
        if g == "":
            if r in REFERENCED or r == "persistentvolumes":
                return self._referenced(node, a)
            if r == "pods":
                return self._pod(node, a)
            if r == "nodes":
                if verb in READ and sub in ("", "status"):
                    return ALLOW
                if verb == "create" and not sub:
                    return ALLOW  # the name in the body is checked by admit_create
                if verb in ("update", "patch", "delete") and sub in ("", "status"):
                    return ALLOW if a.name == node else _deny(f"node '{node}' cannot modify node '{a.name}'")
                return NO_OPINION
            if r in ("services", "endpoints", "namespaces") and verb in READ and not sub:
                return ALLOW
            if r == "events" and verb in ("create", "update", "patch"):
                return ALLOW
            if r == "serviceaccounts" and sub == "token" and verb == "create":
                return ALLOW  # only tokens bound to its own pods: checked by the TokenRequest itself
            return NO_OPINION
        if g == "events.k8s.io" and r == "events" and verb in ("create", "update", "patch"):
            return ALLOW
        if g == "discovery.k8s.io" and r == "endpointslices" and verb in READ:
            return ALLOW
        if g == "networking.k8s.io" and r == "networkpolicies" and verb in READ and not sub:
            return ALLOW
        if g == "storage.k8s.io" and r == "storageclasses" and verb in READ:
            return ALLOW
        if g == "coordination.k8s.io" and r == "leases" and a.namespace == NODE_LEASE_NAMESPACE:
            if verb == "create":
                return ALLOW  # name checked by admit_create
            if verb in ("get", "update", "patch", "delete"):
                return ALLOW if a.name == node else _deny(f"node '{node}' cannot modify lease '{a.name}'")
        return NO_OPINION

    def _referenced(self, node: str, a: Attributes) -> Verdict:
        if (a.resource == "configmaps" and a.verb == "get" and not a.subresource
                and (a.namespace, a.name) == (CONFIGMAP_NAMESPACE, CONFIGMAP_NAME)):
            return ALLOW  # the cluster's network settings, read by every node
        if a.resource == "persistentvolumes" and a.verb in ("list", "watch") and not a.subresource:
            return ALLOW
        if a.verb != "get" or a.subresource or not a.name:
            return _deny("can only get individual resources of this type")
        if a.resource == "persistentvolumes":
            claims = self._pv_claims.get(a.name, ())
            if any(self._uses(node, "pvc", ns, claim) for ns, claim in claims):
                return ALLOW
        elif self._uses(node, REFERENCED[a.resource], a.namespace, a.name):
            return ALLOW
        return _deny(f"no relationship found between node '{node}' and this object")

    def _pod(self, node: str, a: Attributes) -> Verdict:
        verb, sub = a.verb, a.subresource
        if not sub and verb in READ:
            return ALLOW  # cluster-wide: the network parts select pods of every node
        if (not sub and verb == "delete") or (sub == "status" and verb in ("get", "update", "patch")):
            owns = self._owns_pod(node, a.namespace, a.name)
            if owns is None or owns:
                return ALLOW
            return _deny(f"no relationship found between node '{node}' and this object")
        return NO_OPINION


def admit_create(node: str, attrs: Attributes, body: Obj) -> str | None:
    """NodeRestriction for creates: why a node may not create this object, or None."""
    name = str((body.get("metadata") or {}).get("name") or "")
    if attrs.resource == "nodes" and attrs.api_group == "" and name != node:
        return f"node \"{node}\" is not allowed to modify node \"{name}\""
    if attrs.resource == "leases" and attrs.api_group == "coordination.k8s.io" and name != node:
        return f"node \"{node}\" is not allowed to modify lease \"{name}\""
    return None

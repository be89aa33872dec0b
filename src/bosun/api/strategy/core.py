"""Strategies of the core/v1 kinds with rules of their own (pods, namespaces, services,
nodes, volumes and claims), and the plain core kinds' validators and defaulters."""

from __future__ import annotations

import contextlib
import copy

from bosun.api.defaults import core as dcore
from bosun.api.defaults.pod import default_container, default_pod
from bosun.api.errors import FieldError
from bosun.api.objects import as_dict, json_copy, now_rfc3339
from bosun.api.quantity import parse_quantity
from bosun.api.strategy.base import Obj, Strategy
from bosun.api.validation import core as vcore
from bosun.api.validation import podwarnings, update
from bosun.api.validation.ephemeral import validate_ephemeral_update
from bosun.api.validation.service import validate_service

DEFAULT_GRACE_SECONDS = 30


def same_quantity(a: object, b: object) -> bool:
    """Equal by value (``1`` and ``1000m``), as Kubernetes compares quantities."""
    try:
        return parse_quantity(a) == parse_quantity(b)  # type: ignore[arg-type]
    except ValueError:
        return str(a) == str(b)


def qos_class(pod: Obj) -> str:
    """Guaranteed, Burstable or BestEffort, by Kubernetes' rules on requests and limits."""
    spec = as_dict(pod.get("spec"))
    containers = [c for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])
                  if isinstance(c, dict)]
    any_set = False
    guaranteed = True
    for c in containers:
        r = as_dict(c.get("resources"))
        req = r.get("requests") or {}
        lim = r.get("limits") or {}
        if req or lim:
            any_set = True
        for resname in ("cpu", "memory"):
            limit = lim.get(resname)
            if limit is None or (resname in req and not same_quantity(req[resname], limit)):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


class PodStrategy(Strategy):
    """A pod on a node is deleted gracefully: marked, then removed by the node agent once
    its containers are stopped (Kubernetes' pod strategy and kubelet)."""

    own_subresources = ("ephemeralcontainers",)

    def initial_status(self, obj: Obj) -> Obj | None:
        return {"phase": "Pending", "qosClass": qos_class(obj)}

    def grace_period(self, obj: Obj, options: Obj) -> int:
        spec = obj.get("spec") or {}
        if not spec.get("nodeName"):
            return 0  # never scheduled: nothing runs, nothing to wait for
        requested = options.get("gracePeriodSeconds")
        if requested is None:
            requested = spec.get("terminationGracePeriodSeconds")
        grace = int(requested if requested is not None else DEFAULT_GRACE_SECONDS)
        if (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return 0  # nothing is running: no need to wait for the node
        return grace

    def holds_deletion(self, obj: Obj) -> bool:
        grace = obj["metadata"].get("deletionGracePeriodSeconds") or 0
        return bool(grace > 0 and (obj.get("spec") or {}).get("nodeName"))

    def subresource_write(self, sub: str, old: Obj, new: Obj) -> Obj | None:
        """``ephemeralcontainers`` owns spec.ephemeralContainers (defaulted as at create)."""
        if sub != "ephemeralcontainers":
            return None
        out = dict(old)
        out["metadata"] = dict(old["metadata"])
        spec = dict(as_dict(old.get("spec")))
        added = as_dict(new.get("spec")).get("ephemeralContainers")
        if added:
            spec["ephemeralContainers"] = copy.deepcopy(added)
        else:
            spec.pop("ephemeralContainers", None)
        out["spec"] = spec
        for ctr in spec.get("ephemeralContainers") or []:
            if isinstance(ctr, dict):
                with contextlib.suppress(Exception):  # malformed input: validation says what is wrong
                    default_container(ctr)
        return out

    def validate_subresource(self, sub: str, new: Obj, old: Obj) -> list[FieldError]:
        return validate_ephemeral_update(new, old) if sub == "ephemeralcontainers" else []


class NamespaceStrategy(Strategy):
    """A namespace is never deleted at once: it turns Terminating and the namespace
    finalizer empties it, then removes ``spec.finalizers``."""

    def initial_status(self, obj: Obj) -> Obj | None:
        return {"phase": "Active"}

    def holds_deletion(self, obj: Obj) -> bool:
        return bool((obj.get("spec") or {}).get("finalizers"))

    def mark_for_deletion(self, obj: Obj, finalizers: list[str], options: Obj) -> Obj | None:
        if not (obj.get("spec") or {}).get("finalizers") and not finalizers:
            return None
        out = json_copy(obj)
        om = out["metadata"]
        om.setdefault("deletionTimestamp", now_rfc3339())
        om["deletionGracePeriodSeconds"] = 0
        if finalizers:
            om["finalizers"] = finalizers
        out.setdefault("status", {})["phase"] = "Terminating"
        return out


class ServiceStrategy(Strategy):
    """A replaced Service keeps its cluster IPs and node ports (allocated by the admission
    chain) when the new body leaves them out and the type is unchanged."""

    def initial_status(self, obj: Obj) -> Obj | None:
        return {"loadBalancer": {}}

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        ns, os_ = new.get("spec"), old.get("spec")
        if not isinstance(ns, dict) or not isinstance(os_, dict):
            return
        if ns.get("type", "ClusterIP") != os_.get("type", "ClusterIP"):
            return
        for f in ("clusterIP", "clusterIPs", "healthCheckNodePort"):
            if ns.get(f) in (None, "", []) and os_.get(f) not in (None, "", []):
                ns[f] = copy.deepcopy(os_[f])
        old_list, new_list = os_.get("ports"), ns.get("ports")
        if not isinstance(old_list, list) or not isinstance(new_list, list):
            return
        old_ports = [p for p in old_list if isinstance(p, dict)]
        for port in new_list:
            if not isinstance(port, dict) or port.get("nodePort"):
                continue
            for op in old_ports:
                if op.get("nodePort") and (op.get("port"), op.get("protocol", "TCP")) == (
                        port.get("port"), port.get("protocol", "TCP")):
                    port["nodePort"] = op["nodePort"]
                    break


class PendingStrategy(Strategy):
    """Claims and volumes start Pending until a controller binds them."""

    def initial_status(self, obj: Obj) -> Obj | None:
        return {"phase": "Pending"}


class NodeStrategy(Strategy):
    """A node registers itself with its status (capacity, addresses): it is kept."""

    def initial_status(self, obj: Obj) -> Obj | None:
        return None


POD = PodStrategy(vcore.validate_pod, update_rule=update.pod_update, defaulter=default_pod,
                  return_deleted_object=True, warner=podwarnings.for_pod)
NAMESPACE = NamespaceStrategy(vcore.validate_namespace, defaulter=dcore.default_namespace,
                              return_deleted_object=True)
SERVICE = ServiceStrategy(validate_service, update_rule=update.service_update, defaulter=dcore.default_service,
                          return_deleted_object=True)
ENDPOINTS = Strategy(vcore.validate_endpoints, defaulter=dcore.default_endpoints)
CONFIG_MAP = Strategy(vcore.validate_configmap, update_rule=update.configmap_update)
SECRET = Strategy(vcore.validate_secret, update_rule=update.secret_update, defaulter=dcore.default_secret)
EVENT = Strategy(vcore.validate_event)
NODE = NodeStrategy(vcore.validate_node, update_rule=update.node_update, defaulter=dcore.default_node)
CLAIM = PendingStrategy(vcore.validate_pvc, update_rule=update.pvc_update, defaulter=dcore.default_pvc,
                        return_deleted_object=True)
VOLUME = PendingStrategy(vcore.validate_pv, update_rule=update.pv_update, defaulter=dcore.default_pv,
                         return_deleted_object=True)
SERVICE_ACCOUNT = Strategy(vcore.validate_service_account, return_deleted_object=True)

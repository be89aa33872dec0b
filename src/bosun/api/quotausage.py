"""What an object costs a ResourceQuota, as Kubernetes' quota evaluators count it.

Shared by the ResourceQuota admission plugin (what a create adds) and the ResourceQuota
controller (what a namespace holds), so both agree on every name: object counts (``pods``,
``count/deployments.apps``), compute (``requests.cpu``, bare ``cpu`` = requests) over pods
that are not terminal, ``requests.storage`` over claims, and which pods a quota's scopes
select.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from bosun.api.quantity import format_quantity, parse_quantity
from bosun.api.registry import Resource

Obj = dict[str, Any]
Usage = dict[str, Decimal]

# Short names Kubernetes kept from before ``count/<resource>.<group>`` existed.
LEGACY_COUNTS = {"pods": "pods", "services": "services", "configmaps": "configmaps", "secrets": "secrets",
                 "persistentvolumeclaims": "persistentvolumeclaims", "resourcequotas": "resourcequotas",
                 "replicationcontrollers": "replicationcontrollers"}
COMPUTE = ("cpu", "memory")
# The names a pod must request or limit in every container when a quota constrains them.
MUST_SPECIFY = {"requests.cpu", "requests.memory", "limits.cpu", "limits.memory", "cpu", "memory"}
POD_SCOPES = {"Terminating", "NotTerminating", "BestEffort", "NotBestEffort", "PriorityClass",
              "CrossNamespacePodAffinity"}
STORAGE_CLASS_SUFFIX = ".storageclass.storage.k8s.io/"


def count_name(res: Resource) -> str:
    return f"count/{res.plural}" + (f".{res.group}" if res.group else "")


def _list(raw: Any) -> Usage:
    out: Usage = {}
    for name, value in (raw.items() if isinstance(raw, dict) else ()):
        try:
            out[str(name)] = parse_quantity(value)
        except ValueError:
            continue
    return out


def resources_of(container: Obj) -> tuple[Usage, Usage]:
    """A container's (requests, limits)."""
    res = container.get("resources") or {}
    return _list(res.get("requests")), _list(res.get("limits"))


def _containers(spec: Obj, field: str) -> list[Obj]:
    return [c for c in spec.get(field) or [] if isinstance(c, dict)]


def pod_totals(pod: Obj) -> tuple[Usage, Usage]:
    """The pod's effective (requests, limits): the sum over its containers, at least the
    largest init container, plus its overhead (Kubernetes' PodRequests/PodLimits)."""
    spec = pod.get("spec") or {}
    totals: tuple[Usage, Usage] = ({}, {})
    for c in _containers(spec, "containers"):
        for total, part in zip(totals, resources_of(c), strict=True):
            for k, v in part.items():
                total[k] = total.get(k, Decimal(0)) + v
    for c in _containers(spec, "initContainers"):
        for total, part in zip(totals, resources_of(c), strict=True):
            for k, v in part.items():
                total[k] = max(total.get(k, Decimal(0)), v)
    overhead = _list(spec.get("overhead"))
    for total in totals:
        for k, v in overhead.items():
            if k in total:
                total[k] += v
    return totals


def is_terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def is_best_effort(pod: Obj) -> bool:
    spec = pod.get("spec") or {}
    for c in _containers(spec, "containers") + _containers(spec, "initContainers"):
        requests, limits = resources_of(c)
        if any(k in requests or k in limits for k in COMPUTE):
            return False
    return True


def _cross_namespace(term: Any) -> bool:
    """An affinity term that looks beyond the pod's namespace: one naming namespaces, or with a
    namespaceSelector (even an empty one, which selects every namespace)."""
    return isinstance(term, dict) and (bool(term.get("namespaces")) or term.get("namespaceSelector") is not None)


def uses_cross_namespace_affinity(pod: Obj) -> bool:
    """Upstream's ``usesCrossNamespacePodAffinity``: any required or preferred pod (anti-)affinity
    term that is cross-namespace."""
    affinity = (pod.get("spec") or {}).get("affinity")
    if not isinstance(affinity, dict):
        return False
    for field in ("podAffinity", "podAntiAffinity"):
        part = affinity.get(field)
        if not isinstance(part, dict):
            continue
        required = part.get("requiredDuringSchedulingIgnoredDuringExecution") or []
        preferred = part.get("preferredDuringSchedulingIgnoredDuringExecution") or []
        if any(_cross_namespace(t) for t in required if isinstance(required, list)):
            return True
        if any(isinstance(w, dict) and _cross_namespace(w.get("podAffinityTerm"))
               for w in preferred if isinstance(preferred, list)):
            return True
    return False


def _scope_matches(scope: str, op: str, values: list[str], pod: Obj) -> bool:
    spec = pod.get("spec") or {}
    if scope == "Terminating":
        return spec.get("activeDeadlineSeconds") is not None
    if scope == "NotTerminating":
        return spec.get("activeDeadlineSeconds") is None
    if scope == "BestEffort":
        return is_best_effort(pod)
    if scope == "NotBestEffort":
        return not is_best_effort(pod)
    if scope == "PriorityClass":
        name = str(spec.get("priorityClassName") or "")
        if op == "Exists":
            return bool(name)
        if op == "DoesNotExist":
            return not name
        if op == "In":
            return name in values
        return name not in values  # NotIn
    if scope == "CrossNamespacePodAffinity":
        return uses_cross_namespace_affinity(pod)
    return False  # scopes of kinds Bosun does not evaluate (VolumeAttributesClass)


def selectors(quota: Obj) -> list[tuple[str, str, list[str]]]:
    """The quota's scopes and scopeSelector as (scope, operator, values)."""
    spec = quota.get("spec") or {}
    out: list[tuple[str, str, list[str]]] = [(str(s), "Exists", []) for s in spec.get("scopes") or []]
    for e in (spec.get("scopeSelector") or {}).get("matchExpressions") or []:
        if isinstance(e, dict):
            out.append((str(e.get("scopeName")), str(e.get("operator")), [str(v) for v in e.get("values") or []]))
    return out


def matches(quota: Obj, res: Resource, obj: Obj) -> bool:
    """Whether the quota's scopes select ``obj``: a scoped quota selects only pods."""
    sel = selectors(quota)
    if not sel:
        return True
    if res.group != "" or res.plural != "pods":
        return False
    return all(_scope_matches(scope, op, values, obj) for scope, op, values in sel)


def _pod_compute(pod: Obj) -> Usage:
    requests, limits = pod_totals(pod)
    out: Usage = {}
    for k, v in requests.items():
        out[f"requests.{k}"] = v
        if k in COMPUTE or k == "ephemeral-storage":
            out[k] = v
    for k, v in limits.items():
        out[f"limits.{k}"] = v
    return out


def usage(res: Resource, obj: Obj) -> Usage:
    """What ``obj`` (of ``res``) counts against a quota that selects it."""
    one = Decimal(1)
    out: Usage = {count_name(res): one}
    if res.group == "":
        legacy = LEGACY_COUNTS.get(res.plural)
        if legacy is not None:
            out[legacy] = one
        if res.plural == "pods":
            if is_terminal(obj):
                return {}
            out.update(_pod_compute(obj))
        elif res.plural == "services":
            spec = obj.get("spec") or {}
            kind = spec.get("type")
            if kind == "LoadBalancer":
                out["services.loadbalancers"] = one
            if kind in ("NodePort", "LoadBalancer"):
                out["services.nodeports"] = Decimal(len(spec.get("ports") or []))
        elif res.plural == "persistentvolumeclaims":
            spec = obj.get("spec") or {}
            storage = _list((spec.get("resources") or {}).get("requests")).get("storage")
            cls = spec.get("storageClassName")
            if storage is not None:
                out["requests.storage"] = storage
                if cls:
                    out[f"{cls}{STORAGE_CLASS_SUFFIX}requests.storage"] = storage
            if cls:
                out[f"{cls}{STORAGE_CLASS_SUFFIX}persistentvolumeclaims"] = one
    return out


def add(total: Usage, part: Mapping[str, Decimal]) -> None:
    for k, v in part.items():
        total[k] = total.get(k, Decimal(0)) + v


def hard_of(quota: Obj, field: str = "hard", where: str = "spec") -> Usage:
    return _list((quota.get(where) or {}).get(field))


def missing_specs(pod: Obj, constrained: Iterable[str]) -> dict[str, list[str]]:
    """For each compute name the quota constrains (``limits.cpu``), the containers that do
    not set it: upstream still requires them to, for the names it did so before QoS."""
    required = set(constrained) & MUST_SPECIFY
    out: dict[str, list[str]] = {}
    spec = pod.get("spec") or {}
    for c in _containers(spec, "containers") + _containers(spec, "initContainers"):
        requests, limits = resources_of(c)
        have = {f"requests.{k}" for k in requests} | {f"limits.{k}" for k in limits} | set(requests)
        for name in sorted(required - have):
            out.setdefault(name, []).append(str(c.get("name") or ""))
    return out


def is_binary(name: str) -> bool:
    """Whether a resource's quantities print in Ki/Mi/Gi (memory and storage), as the
    quantities users write for them usually do."""
    return not name.endswith(("cpu", "pods")) and (
        "memory" in name or "storage" in name)


def show(name: str, value: Decimal) -> str:
    return format_quantity(value, binary=is_binary(name))


def pretty(values: Mapping[str, Decimal]) -> str:
    """``requests.cpu=500m,requests.memory=1Gi`` (upstream's prettyPrint)."""
    return ",".join(f"{k}={show(k, values[k])}" for k in sorted(values))


def encode(values: Mapping[str, Decimal]) -> dict[str, str]:
    return {k: show(k, v) for k, v in sorted(values.items())}

"""What the scheduler needs to know about a pod, parsed once.

A pod is looked at by every filter for every scheduling attempt and by the snapshot every
time it changes; parsing quantities and selectors once per pod (not per node, not per
plugin) keeps the hot path to array arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from bosun.api.quantity import cpu_millis, to_bytes
from bosun.api.selectors import LabelSelector, SelectorError, label_selector_from_dict

Obj = dict[str, Any]

HOSTNAME_LABEL = "kubernetes.io/hostname"
STRATEGY_ANNOTATION = "bosun.io/scheduling-strategy"
CONSTRAINTS_ANNOTATION = "bosun.io/constraints"
BASE_RESOURCES = ("cpu", "memory", "ephemeral-storage", "pods")


class PodSpecError(ValueError):
    """The pod asks for something the scheduler cannot interpret (reported as an event)."""


@dataclass(frozen=True, slots=True)
class AffinityTerm:
    """One pod (anti-)affinity term, with its namespaces resolved (None = every namespace)."""

    selector: LabelSelector
    topology_key: str
    namespaces: frozenset[str] | None
    weight: int = 0

    def matches(self, namespace: str, labels: dict[str, str]) -> bool:
        return (self.namespaces is None or namespace in self.namespaces) and self.selector.matches(labels)


@dataclass(frozen=True, slots=True)
class SpreadConstraint:
    max_skew: int
    topology_key: str
    hard: bool
    selector: LabelSelector
    min_domains: int = 1


@dataclass(slots=True)
class PodInfo:
    key: str
    uid: str
    namespace: str
    name: str
    labels: dict[str, str]
    cpu: int = 0  # millicores
    memory: int = 0
    storage: int = 0
    scalars: dict[str, int] = field(default_factory=dict)  # extended resources (whole units)
    host_ports: tuple[tuple[str, int, str], ...] = ()  # (protocol, port, hostIP)
    priority: int = 0
    preempt: bool = True
    owner_uid: str = ""
    node_name: str = ""
    tolerations: tuple[Obj, ...] = ()
    node_selector: dict[str, str] = field(default_factory=dict)
    required_node_terms: tuple[Obj, ...] = ()  # nodeSelectorTerms (ORed)
    preferred_node_terms: tuple[tuple[int, Obj], ...] = ()
    affinity: tuple[AffinityTerm, ...] = ()
    anti_affinity: tuple[AffinityTerm, ...] = ()
    preferred_affinity: tuple[AffinityTerm, ...] = ()
    preferred_anti_affinity: tuple[AffinityTerm, ...] = ()
    spread: tuple[SpreadConstraint, ...] = ()
    annotations: dict[str, str] = field(default_factory=dict)
    claims: tuple[str, ...] = ()  # PersistentVolumeClaim names (in the pod's namespace) it mounts
    # What this was parsed from, so a later version of the pod that changes none of it (a
    # binding, a status write) is recognised without parsing again.
    source: tuple[Obj, Any] | None = field(default=None, compare=False, repr=False)

    def parsed_from(self, pod: Obj) -> bool:
        """Whether ``pod`` would parse to this (its nodeName aside, which the caller tracks)."""
        if self.source is None:
            return False
        spec, owners = self.source
        meta = pod.get("metadata") or {}
        new = pod.get("spec") or {}
        if (meta.get("uid") or "") != self.uid or (meta.get("labels") or {}) != self.labels \
                or meta.get("ownerReferences") != owners:
            return False
        if new.get("nodeName") != spec.get("nodeName"):
            return {**new, "nodeName": None} == {**spec, "nodeName": None}
        return bool(new == spec)


@lru_cache(maxsize=4096)
def _parse_quantity(is_cpu: bool, value: Any) -> int:
    return cpu_millis(value) if is_cpu else to_bytes(value)


def _quantity(kind: str, value: Any) -> int:
    """Parsed once per distinct spelling: thousands of pods ask for the same "100m"."""
    try:
        return _parse_quantity(kind == "cpu", value)
    except ValueError as exc:
        raise PodSpecError(f"invalid quantity for {kind}: {value!r}") from exc
    except TypeError:  # unhashable: not a quantity either, but let the parser say why
        try:
            return cpu_millis(value) if kind == "cpu" else to_bytes(value)
        except ValueError as exc:
            raise PodSpecError(f"invalid quantity for {kind}: {value!r}") from exc


def _requests(spec: Obj) -> dict[str, int]:
    """Effective requests: max(sum of containers, any init container) plus overhead, as Kubernetes."""
    total: dict[str, int] = {}
    for ctr in spec.get("containers") or []:
        for k, v in (((ctr.get("resources") or {}).get("requests")) or {}).items():
            total[k] = total.get(k, 0) + _quantity(k, v)
    for ctr in spec.get("initContainers") or []:
        for k, v in (((ctr.get("resources") or {}).get("requests")) or {}).items():
            total[k] = max(total.get(k, 0), _quantity(k, v))
    for k, v in (spec.get("overhead") or {}).items():
        total[k] = total.get(k, 0) + _quantity(k, v)
    return total


def _selector(raw: Any, what: str) -> LabelSelector:
    try:
        return label_selector_from_dict(raw)
    except SelectorError as exc:
        raise PodSpecError(f"{what}: {exc}") from exc


def _terms(raw: list[Obj] | None, namespace: str, *, weighted: bool) -> tuple[AffinityTerm, ...]:
    out: list[AffinityTerm] = []
    for item in raw or []:
        weight = int(item.get("weight") or 0) if weighted else 0
        term = item.get("podAffinityTerm") or {} if weighted else item
        key = str(term.get("topologyKey") or "")
        if not key:
            raise PodSpecError("pod affinity term has an empty topologyKey")
        nss: frozenset[str] | None = frozenset(term.get("namespaces") or ())
        ns_sel = term.get("namespaceSelector")
        if ns_sel is not None and not (ns_sel.get("matchLabels") or ns_sel.get("matchExpressions")):
            nss = None  # an empty namespaceSelector selects every namespace
        elif not nss:
            nss = frozenset((namespace,))
        out.append(AffinityTerm(_selector(term.get("labelSelector"), "pod affinity labelSelector"), key, nss,
                                weight))
    return tuple(out)


def _claims(spec: Obj, pod_name: str) -> tuple[str, ...]:
    """Claims the pod's volumes use: named ones, and generic ephemeral volumes' ``<pod>-<volume>``."""
    out: list[str] = []
    for v in spec.get("volumes") or ():
        if not isinstance(v, dict):
            continue
        pvc = v.get("persistentVolumeClaim")
        if isinstance(pvc, dict) and pvc.get("claimName"):
            out.append(str(pvc["claimName"]))
        elif v.get("ephemeral") is not None:
            out.append(f"{pod_name}-{v.get('name')}")
    return tuple(out)


def parse_pod(pod: Obj, priority_of: dict[str, int] | None = None) -> PodInfo:
    """Parse ``pod``; PodSpecError when a field cannot be interpreted."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    ns = str(meta.get("namespace") or "")
    name = str(meta.get("name") or "")
    reqs = _requests(spec)
    owner = ""
    for ref in meta.get("ownerReferences") or []:
        if ref.get("controller"):
            owner = str(ref.get("uid") or "")
    ports: list[tuple[str, int, str]] = []
    for ctr in spec.get("containers") or []:
        for p in ctr.get("ports") or []:
            hp = p.get("hostPort")
            if hp:
                ports.append((str(p.get("protocol") or "TCP"), int(hp), str(p.get("hostIP") or "0.0.0.0")))
    priority = spec.get("priority")
    if priority is None:
        priority = (priority_of or {}).get(str(spec.get("priorityClassName") or ""), 0)
    aff = spec.get("affinity") or {}
    node_aff = aff.get("nodeAffinity") or {}
    required = (node_aff.get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms")
    pa = aff.get("podAffinity") or {}
    paa = aff.get("podAntiAffinity") or {}
    spread: list[SpreadConstraint] = []
    for c in spec.get("topologySpreadConstraints") or []:
        key = str(c.get("topologyKey") or "")
        if not key:
            raise PodSpecError("topology spread constraint has an empty topologyKey")
        spread.append(SpreadConstraint(
            max(1, int(c.get("maxSkew") or 1)), key, c.get("whenUnsatisfiable", "DoNotSchedule") != "ScheduleAnyway",
            _selector(c.get("labelSelector"), "topology spread labelSelector"), int(c.get("minDomains") or 1)))
    scalars = {k: v for k, v in reqs.items() if k not in BASE_RESOURCES}
    return PodInfo(
        key=f"{ns}/{name}", uid=str(meta.get("uid") or ""), namespace=ns, name=name,
        labels=dict(meta.get("labels") or {}), cpu=reqs.get("cpu", 0), memory=reqs.get("memory", 0),
        storage=reqs.get("ephemeral-storage", 0), scalars=scalars, host_ports=tuple(ports),
        priority=int(priority), preempt=spec.get("preemptionPolicy", "PreemptLowerPriority") != "Never",
        owner_uid=owner, node_name=str(spec.get("nodeName") or ""),
        tolerations=tuple(spec.get("tolerations") or ()), node_selector=dict(spec.get("nodeSelector") or {}),
        required_node_terms=tuple(required or ()) if required is not None else (),
        preferred_node_terms=tuple((int(t.get("weight") or 0), t.get("preference") or {})
                                   for t in node_aff.get("preferredDuringSchedulingIgnoredDuringExecution") or []),
        affinity=_terms(pa.get("requiredDuringSchedulingIgnoredDuringExecution"), ns, weighted=False),
        anti_affinity=_terms(paa.get("requiredDuringSchedulingIgnoredDuringExecution"), ns, weighted=False),
        preferred_affinity=_terms(pa.get("preferredDuringSchedulingIgnoredDuringExecution"), ns, weighted=True),
        preferred_anti_affinity=_terms(paa.get("preferredDuringSchedulingIgnoredDuringExecution"), ns,
                                       weighted=True),
        spread=tuple(spread), annotations=dict(meta.get("annotations") or {}),
        claims=_claims(spec, name) if spec.get("volumes") else (),
        source=(spec, meta.get("ownerReferences")),
    )

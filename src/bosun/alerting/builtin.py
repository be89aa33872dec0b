"""The rules on by default, each a :class:`~bosun.alerting.model.RuleSource` over objects the
API already holds (no metrics history needed): a pod's container statuses, a node's
conditions, an HPA's status. Names and meanings follow kube-prometheus' rules, so runbooks
written for those fit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from bosun.alerting.model import Candidate, Obj, RuleSource

OOM_RECENT = 600.0  # an OOM kill is news for ten minutes


class Objects(Protocol):
    """A live list of one kind's objects (an informer's cache)."""

    def list(self, namespace: str | None = None) -> list[Obj]: ...


@dataclass(frozen=True, slots=True)
class RuleSettings:
    """How long a rule must hold before it fires, how long it keeps firing once it stops
    holding (so a container between two crashes does not resolve and fire again), and what
    is added to each alert."""

    for_: float
    keep_firing_for: float
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    enabled: bool = True

    def overridden(self, o: dict[str, Any]) -> RuleSettings:
        return RuleSettings(o["for"] if o["for"] >= 0 else self.for_,
                            o["keepFiringFor"] if o["keepFiringFor"] >= 0 else self.keep_firing_for,
                            {**self.labels, **o["labels"]}, {**self.annotations, **o["annotations"]}, o["enabled"])


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _containers(pod: Obj) -> Iterator[Obj]:
    st = pod.get("status") or {}
    yield from st.get("initContainerStatuses") or []
    yield from st.get("containerStatuses") or []


def _pod_labels(pod: Obj, c: Obj) -> dict[str, str]:
    m = _meta(pod)
    return {"namespace": str(m.get("namespace", "")), "pod": str(m.get("name", "")), "container": str(c.get("name"))}


@dataclass
class PodCrashLooping:
    """A container waiting in CrashLoopBackOff: it exits again and again."""

    pods: Objects
    name: str = "KubePodCrashLooping"

    def active(self, now: float) -> Iterable[Candidate]:
        for pod in self.pods.list():
            for c in _containers(pod):
                waiting = (c.get("state") or {}).get("waiting") or {}
                if waiting.get("reason") == "CrashLoopBackOff":
                    labels = _pod_labels(pod, c)
                    where = f"{labels['namespace']}/{labels['pod']} ({labels['container']})"
                    why = f"restarted {c.get('restartCount', 0)} times; {waiting.get('message', '')}"
                    yield Candidate(labels, {"summary": f"Pod {where} is crash looping",
                                             "description": why.strip(" ;")}, pod)


@dataclass
class ContainerOOMKilled:
    """A container whose last run ended with the kernel's OOM killer, within ten minutes."""

    pods: Objects
    name: str = "KubeContainerOOMKilled"

    def active(self, now: float) -> Iterable[Candidate]:
        for pod in self.pods.list():
            for c in _containers(pod):
                term = (c.get("lastState") or {}).get("terminated") or {}
                if term.get("reason") != "OOMKilled":
                    continue
                finished = _epoch(term.get("finishedAt"))
                if finished is not None and now - finished > OOM_RECENT:
                    continue
                labels = _pod_labels(pod, c)
                yield Candidate(labels, {"summary": f"Container {labels['container']} of pod "
                                                    f"{labels['namespace']}/{labels['pod']} was OOM-killed"}, pod)


@dataclass
class NodeCondition:
    """A node condition in a bad state: Ready not True, or a pressure condition True."""

    nodes: Objects
    name: str
    condition: str
    bad: Callable[[str], bool]
    what: str

    def active(self, now: float) -> Iterable[Candidate]:
        for node in self.nodes.list():
            conds = {c.get("type"): c for c in (node.get("status") or {}).get("conditions") or []}
            c = conds.get(self.condition)
            if c is None or not self.bad(str(c.get("status"))):
                continue
            name = str(_meta(node).get("name"))
            yield Candidate({"node": name}, {"summary": f"Node {name} {self.what}",
                                             "description": str(c.get("message") or c.get("reason") or "")}, node)


@dataclass
class HpaMaxedOut:
    """An HPA running at its maximum replicas: the load wants more than it may give."""

    hpas: Objects
    name: str = "KubeHpaMaxedOut"

    def active(self, now: float) -> Iterable[Candidate]:
        for hpa in self.hpas.list():
            spec, st = hpa.get("spec") or {}, hpa.get("status") or {}
            high = spec.get("maxReplicas")
            if high and st.get("currentReplicas") == high:
                m = _meta(hpa)
                labels = {"namespace": str(m.get("namespace", "")), "horizontalpodautoscaler": str(m.get("name"))}
                yield Candidate(labels, {"summary": f"HPA {labels['namespace']}/{labels['horizontalpodautoscaler']} "
                                                    f"has run at its maximum of {high} replicas"}, hpa)


def _epoch(stamp: Any) -> float | None:
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Builtin:
    make: Callable[[Objects, Objects, Objects], RuleSource]  # (pods, nodes, hpas) -> source
    settings: RuleSettings


def _crit(summary_for: float, keep: float) -> RuleSettings:
    return RuleSettings(summary_for, keep, {"severity": "critical"})


def _warn(summary_for: float, keep: float) -> RuleSettings:
    return RuleSettings(summary_for, keep, {"severity": "warning"})


BUILTIN: dict[str, Builtin] = {
    "KubePodCrashLooping": Builtin(lambda p, n, h: PodCrashLooping(p), _warn(0.0, 300.0)),
    "KubeContainerOOMKilled": Builtin(lambda p, n, h: ContainerOOMKilled(p), _warn(0.0, 0.0)),
    "KubeNodeNotReady": Builtin(lambda p, n, h: NodeCondition(n, "KubeNodeNotReady", "Ready", lambda s: s != "True",
                                                              "is not ready"), _crit(20.0, 0.0)),
    "KubeNodeMemoryPressure": Builtin(lambda p, n, h: NodeCondition(n, "KubeNodeMemoryPressure", "MemoryPressure",
                                                                    lambda s: s == "True", "is short of memory"),
                                      _warn(60.0, 0.0)),
    "KubeNodeDiskPressure": Builtin(lambda p, n, h: NodeCondition(n, "KubeNodeDiskPressure", "DiskPressure",
                                                                  lambda s: s == "True", "is short of disk"),
                                    _warn(60.0, 0.0)),
    "KubeHpaMaxedOut": Builtin(lambda p, n, h: HpaMaxedOut(h), _warn(900.0, 0.0)),
}

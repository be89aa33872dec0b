"""The rules on by default, each a :class:`~bosun.alerting.model.RuleSource` over objects the
API already holds (no metrics history needed): a pod's container statuses, a node's
conditions, an HPA's status, a TLS Secret's certificate. (PVCs almost full needs volume
usage, which is a metric: it belongs to a rule source over the metrics history.) Names and
meanings follow kube-prometheus' rules, so runbooks
written for those fit.
"""

from __future__ import annotations

import base64
import binascii
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from cryptography import x509

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


@dataclass
class PodRestartingOften:
    """A container restarted ``times`` times within ``window`` seconds, whatever its state now
    (one that crashes after a minute is never in CrashLoopBackOff for long). The counts are
    remembered between evaluations (a metrics history would answer this from its store); a
    pod whose resourceVersion did not change and that was not alerting is skipped."""

    pods: Objects
    name: str = "KubePodRestartingOften"
    times: int = 3
    window: float = 900.0
    seen: dict[str, tuple[str, dict[str, deque[tuple[float, int]]]]] = field(default_factory=dict)
    alerting: set[str] = field(default_factory=set)

    def active(self, now: float) -> Iterable[Candidate]:
        live: set[str] = set()
        out: list[Candidate] = []
        alerting: set[str] = set()
        for pod in self.pods.list():
            m = _meta(pod)
            uid, rv = str(m.get("uid")), str(m.get("resourceVersion"))
            live.add(uid)
            have = self.seen.get(uid)
            if have is not None and have[0] == rv and uid not in self.alerting:
                continue  # nothing changed, nothing was firing
            per = have[1] if have is not None else {}
            self.seen[uid] = (rv, per)
            for c in _containers(pod):
                samples = per.setdefault(str(c.get("name")), deque())
                count = int(c.get("restartCount") or 0)
                if not samples or samples[-1][1] != count:
                    samples.append((now, count))
                while len(samples) > 1 and samples[1][0] <= now - self.window:
                    samples.popleft()  # keep one sample from before the window as the base
                if count - samples[0][1] >= self.times:
                    alerting.add(uid)
                    labels = _pod_labels(pod, c)
                    where = f"{labels['namespace']}/{labels['pod']} ({labels['container']})"
                    minutes = f"{self.window / 60:g}"
                    out.append(Candidate(labels, {  # the summary stays put while it fires: no rewrites
                        "summary": f"Pod {where} restarted {self.times} or more times within {minutes} minutes",
                        "description": f"restart count {count}"}, pod))
        self.alerting = alerting
        if len(self.seen) > len(live):
            for gone in set(self.seen) - live:
                del self.seen[gone]
        return out


@dataclass
class CertificateExpiring:
    """A TLS Secret (``kubernetes.io/tls``) whose certificate ends within ``soon`` seconds (or
    has ended). Parsed certificates are remembered per resourceVersion."""

    secrets: Objects
    name: str = "KubeCertificateExpiring"
    soon: float = 14 * 86400.0
    parsed: dict[str, tuple[str, float | None]] = field(default_factory=dict)

    def _not_after(self, secret: Obj) -> float | None:
        m = _meta(secret)
        uid, rv = str(m.get("uid")), str(m.get("resourceVersion"))
        have = self.parsed.get(uid)
        if have is not None and have[0] == rv:
            return have[1]
        ends: float | None = None
        try:
            pem = base64.b64decode((secret.get("data") or {}).get("tls.crt") or "")
            ends = x509.load_pem_x509_certificate(pem).not_valid_after_utc.timestamp()
        except (ValueError, binascii.Error):
            ends = None
        self.parsed[uid] = (rv, ends)
        return ends

    def active(self, now: float) -> Iterable[Candidate]:
        live: set[str] = set()
        out: list[Candidate] = []
        for secret in self.secrets.list():
            if secret.get("type") != "kubernetes.io/tls":
                continue
            live.add(str(_meta(secret).get("uid")))
            ends = self._not_after(secret)
            if ends is None or ends - now > self.soon:
                continue
            m = _meta(secret)
            labels = {"namespace": str(m.get("namespace", "")), "secret": str(m.get("name"))}
            left = "has expired" if ends <= now else f"expires in {int((ends - now) // 86400)} day(s)"
            out.append(Candidate(labels, {"summary": f"Certificate in Secret {labels['namespace']}/{labels['secret']} "
                                                     f"{left}"}, secret))
        for gone in set(self.parsed) - live:
            del self.parsed[gone]
        return out


def _epoch(stamp: Any) -> float | None:
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class ServedCertificates(Protocol):
    async def certificates(self) -> list[tuple[str, float]]:
        """(what the certificate is, its notAfter in seconds since the epoch)."""
        ...


@dataclass(frozen=True, slots=True)
class Cluster:
    """The object lists the built-in rules read (the alerting component's informers), and
    where the cluster's own certificates are found (None: nowhere, as in a benchmark)."""

    pods: Objects
    nodes: Objects
    hpas: Objects
    secrets: Objects
    served: ServedCertificates | None = None


@dataclass(frozen=True, slots=True)
class Builtin:
    make: Callable[[Cluster], RuleSource]
    settings: RuleSettings


def _crit(for_: float, keep: float) -> RuleSettings:
    return RuleSettings(for_, keep, {"severity": "critical"})


def _warn(for_: float, keep: float) -> RuleSettings:
    return RuleSettings(for_, keep, {"severity": "warning"})


def _node_rule(name: str, cond: str, bad: Callable[[str], bool], what: str) -> Callable[[Cluster], RuleSource]:
    return lambda c: NodeCondition(c.nodes, name, cond, bad, what)


BUILTIN: dict[str, Builtin] = {
    "KubePodCrashLooping": Builtin(lambda c: PodCrashLooping(c.pods), _warn(0.0, 300.0)),
    "KubePodRestartingOften": Builtin(lambda c: PodRestartingOften(c.pods), _warn(0.0, 0.0)),
    "KubeContainerOOMKilled": Builtin(lambda c: ContainerOOMKilled(c.pods), _warn(0.0, 0.0)),
    "KubeNodeNotReady": Builtin(_node_rule("KubeNodeNotReady", "Ready", lambda s: s != "True", "is not ready"),
                                _crit(20.0, 0.0)),
    "KubeNodeMemoryPressure": Builtin(_node_rule("KubeNodeMemoryPressure", "MemoryPressure", lambda s: s == "True",
                                                 "is short of memory"), _warn(60.0, 0.0)),
    "KubeNodeDiskPressure": Builtin(_node_rule("KubeNodeDiskPressure", "DiskPressure", lambda s: s == "True",
                                               "is short of disk"), _warn(60.0, 0.0)),
    "KubeHpaMaxedOut": Builtin(lambda c: HpaMaxedOut(c.hpas), _warn(900.0, 0.0)),
    "KubeCertificateExpiring": Builtin(lambda c: CertificateExpiring(c.secrets), _warn(0.0, 0.0)),
}

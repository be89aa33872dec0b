"""HTTP checks ("HTTP GET" monitoring): a pod annotated ``bosun.io/http-check`` is checked by
the agent of its node every ``interval`` seconds, and the result is served with the pod's
scraped metrics in the Summary API, so it lands in the control plane's history with the
pod's ``namespace`` and ``pod`` labels and a ``url`` label.

* ``bosun.io/http-check: /healthz``: GET ``http://<podIP>:<port>/healthz``, the port from
  ``bosun.io/http-check-port``, else the pod's first declared container port, else 80;
* ``bosun.io/http-check: http://10.96.0.20:8080/ready``: an absolute URL, fetched from the
  node: a ClusterIP (the node's service proxy translates what the node itself sends), another
  pod's IP (the overlay routes), or an address outside the cluster.

A Service annotated ``bosun.io/http-check: /healthz`` is checked at each of its ready
endpoints: every agent checks the Ready pods of its node that the Service selects, on the
port of the Service's ``bosun.io/http-check-port`` (a number or a container port's name), else
its first port's ``targetPort`` (named ports resolved in each pod), and records the result
under the endpoint pod with a ``service`` label: one failing replica is one failing series.
``bosun.io/http-check-interval`` (``30s``, ``1m``, seconds) on the pod or the Service sets how
often (default the agent's 10 s, at least 1 s). ``bosun.io/http-check-target: service`` (or
``both``) checks the Service's own address instead of (or as well as) its endpoints, and a
Service without a selector has the endpoints of its EndpointSlices checked: see
:mod:`.servicecheck`.

Why the agent: pod IPs and ClusterIPs are reachable from every node, the work spreads over
the nodes with the pods, and it rides the scrape loop and the Summary API that already carry
pods' custom metrics to the history. The metric names are the blackbox exporter's, so rules
written for it fit: ``probe_success`` (1 for a 2xx/3xx answer within the timeout, else 0),
``probe_http_status_code`` (0 when there was no answer) and ``probe_duration_seconds``.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from bosun.agent.servicecheck import CHECK, CHECK_PORT, SERVICE, check_target, service_checks

Pod = dict[str, Any]

CHECK_INTERVAL = "bosun.io/http-check-interval"
MIN_INTERVAL = 1.0
_INTERVAL = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
Obj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Target:
    """One GET to make: for the pod ``uid``, labelled ``labels`` (url, and service for a Service's)."""

    uid: str
    url: str
    labels: tuple[tuple[str, str], ...]
    interval: float


def interval_of(annotations: Obj, default: float) -> float:
    """``bosun.io/http-check-interval`` in seconds (``30s``, ``1m``, ``15``), at least
    :data:`MIN_INTERVAL`; the default when absent or unreadable."""
    m = _INTERVAL.match(str(annotations.get(CHECK_INTERVAL) or "").strip())
    if m is None:
        return default
    value = float(m.group(1)) * _UNITS[m.group(2) or "s"]
    return max(value, MIN_INTERVAL) if math.isfinite(value) else default
TIMEOUT = 5.0
MAX_BYTES = 64 * 1024  # the body is read (a server that sends headers and stalls is failing) but not kept


def _first_port(pod: Pod) -> str:
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if isinstance(p, dict) and p.get("containerPort"):
                return str(p["containerPort"])
    return "80"


def _ready(pod: Pod) -> bool:
    status = pod.get("status") or {}
    return status.get("phase") == "Running" and bool(status.get("podIP")) and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def _container_port(pod: Pod, port: str) -> str | None:
    """``port`` if a number, else the number of the pod's container port of that name."""
    if port.isdigit():
        return port
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if isinstance(p, dict) and p.get("name") == port and p.get("containerPort"):
                return str(p["containerPort"])
    return None


def service_url(service: Obj, pod: Pod) -> str | None:
    """What to GET at ``pod`` for ``service``'s check, or None when the service asks for none,
    does not select the pod, or the pod is not a ready endpoint."""
    meta = service.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    path = str(annotations.get(CHECK) or "").strip()
    spec = service.get("spec") or {}
    selector = spec.get("selector") or {}
    pod_meta = pod.get("metadata") or {}
    if (not path or not selector or meta.get("namespace") != pod_meta.get("namespace")
            or check_target(service) == SERVICE):
        return None
    labels = pod_meta.get("labels") or {}
    if any(labels.get(k) != v for k, v in selector.items()) or not _ready(pod):
        return None
    port: str | None = str(annotations.get(CHECK_PORT) or "").strip()
    if not port:
        first = (spec.get("ports") or [{}])[0]
        port = str(first.get("targetPort") or first.get("port") or "80")
    port = _container_port(pod, port)
    if port is None:
        return None
    ip = str((pod.get("status") or {}).get("podIP"))
    host = f"[{ip}]" if ":" in ip else ip
    return f"http://{host}:{port}{path if path.startswith('/') else '/' + path}"


def targets(pods: list[Pod], services: list[Obj], default_interval: float, *, slices: list[Obj] | None = None,
            nodes: list[Obj] | None = None, node_name: str = "") -> list[Target]:
    """Every check this node makes: its pods' own and, for each of its pods that is a ready
    endpoint of an annotated Service, the Service's; with ``node_name``, the Services' checks
    that are no pod's and fall to this node (:mod:`.servicecheck`, ``uid`` empty)."""
    checked = [s for s in services if ((s.get("metadata") or {}).get("annotations") or {}).get(CHECK)]
    out = []
    if node_name:
        for svc, url in service_checks(checked, slices or [], nodes or [], node_name):
            smeta = svc.get("metadata") or {}
            out.append(Target("", url, (("namespace", str(smeta.get("namespace", ""))),
                                        ("service", str(smeta.get("name", ""))), ("url", url)),
                              interval_of(smeta.get("annotations") or {}, default_interval)))
    for pod in pods:
        meta = pod.get("metadata") or {}
        uid = str(meta.get("uid", ""))
        url = check_url(pod)
        if url:
            out.append(Target(uid, url, (("url", url),), interval_of(meta.get("annotations") or {}, default_interval)))
        for svc in checked:
            url = service_url(svc, pod)
            if url:
                smeta = svc.get("metadata") or {}
                out.append(Target(uid, url, (("service", str(smeta.get("name", ""))), ("url", url)),
                                  interval_of(smeta.get("annotations") or {}, default_interval)))
    return out


def check_url(pod: Pod) -> str | None:
    """What to GET for ``pod``, or None when it asks for no check (or has no IP yet)."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    target = str(annotations.get(CHECK) or "").strip()
    if not target:
        return None
    status = pod.get("status") or {}
    if status.get("phase") != "Running":
        return None  # a pod starting or gone is not a failing check
    if target.startswith(("http://", "https://")):
        return target
    ip = status.get("podIP")
    if not ip:
        return None
    port = str(annotations.get(CHECK_PORT) or _first_port(pod))
    host = f"[{ip}]" if ":" in ip else ip
    return f"http://{host}:{port}{target if target.startswith('/') else '/' + target}"


class HttpChecker:
    """Runs the checks, each when its interval has passed; keeps each one's last result."""

    def __init__(self, list_pods: Callable[[], list[Pod]], *, interval: float = 10.0,
                 list_services: Callable[[], list[Obj]] = list, list_slices: Callable[[], list[Obj]] = list,
                 list_nodes: Callable[[], list[Obj]] = list, node_name: str = "") -> None:
        self.list_pods = list_pods
        self.list_services = list_services
        self.list_slices = list_slices
        self.list_nodes = list_nodes
        self.node_name = node_name  # none: only the pods' checks (no Service-level ones)
        self.interval = interval
        # target -> (time, samples) of its last check
        self.results: dict[Target, tuple[float, list[dict[str, Any]]]] = {}
        self._due: dict[Target, float] = {}
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def get(self, url: str) -> int:
        """The answer's status code, 0 when there was none (refused, timed out, bad URL)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT))
        try:
            async with self._session.get(url, headers={"User-Agent": "bosun-http-check"}) as resp:
                await resp.content.read(MAX_BYTES)
                return resp.status
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
            return 0

    async def check(self, target: Target) -> None:
        began = time.monotonic()
        code = await self.get(target.url)
        took = time.monotonic() - began
        labels = dict(target.labels)
        self.results[target] = (time.time(), [
            {"name": "probe_success", "labels": labels, "value": 1.0 if 200 <= code < 400 else 0.0},
            {"name": "probe_http_status_code", "labels": labels, "value": float(code)},
            {"name": "probe_duration_seconds", "labels": labels, "value": took}])

    async def check_all(self, now: float | None = None) -> int:
        """Make the checks that are due; how many."""
        t = time.monotonic() if now is None else now
        live = targets(self.list_pods(), self.list_services(), self.interval, slices=self.list_slices(),
                       nodes=self.list_nodes(), node_name=self.node_name)
        keep = set(live)
        for gone in [k for k in self.results if k not in keep]:
            del self.results[gone]
        for gone in [k for k in self._due if k not in keep]:
            del self._due[gone]
        due = [k for k in live if self._due.get(k, 0.0) <= t]
        for k in due:
            self._due[k] = t + k.interval
        await asyncio.gather(*(self.check(k) for k in due))
        return len(due)

    def for_node(self) -> list[dict[str, Any]]:
        """The samples of the checks that are no pod's (a Service's own address, a selectorless
        Service's endpoints), for the Summary API's ``node.customMetrics``."""
        return self.for_pod("")

    def for_pod(self, uid: str) -> list[dict[str, Any]]:
        """The pod's check samples in the Summary API's ``customMetrics`` shape (fresh ones only)."""
        now = time.time()
        out: list[dict[str, Any]] = []
        for target, (when, samples) in self.results.items():
            if target.uid == uid and now - when <= 3 * max(target.interval, self.interval):
                out.extend(samples)
        return out

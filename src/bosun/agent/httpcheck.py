"""HTTP checks ("HTTP GET" monitoring): a pod annotated ``bosun.io/http-check`` is checked by
the agent of its node every ``interval`` seconds, and the result is served with the pod's
scraped metrics in the Summary API, so it lands in the control plane's history with the
pod's ``namespace`` and ``pod`` labels and a ``url`` label.

* ``bosun.io/http-check: /healthz``: GET ``http://<podIP>:<port>/healthz``, the port from
  ``bosun.io/http-check-port``, else the pod's first declared container port, else 80;
* ``bosun.io/http-check: http://10.96.0.20:8080/ready``: an absolute URL, fetched from the
  node: a ClusterIP (the node's service proxy translates what the node itself sends), another
  pod's IP (the overlay routes), or an address outside the cluster.

Why the agent: pod IPs and ClusterIPs are reachable from every node, the work spreads over
the nodes with the pods, and it rides the scrape loop and the Summary API that already carry
pods' custom metrics to the history. The metric names are the blackbox exporter's, so rules
written for it fit: ``probe_success`` (1 for a 2xx/3xx answer within the timeout, else 0),
``probe_http_status_code`` (0 when there was no answer) and ``probe_duration_seconds``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp

Pod = dict[str, Any]

CHECK = "bosun.io/http-check"
CHECK_PORT = "bosun.io/http-check-port"
TIMEOUT = 5.0
MAX_BYTES = 64 * 1024  # the body is read (a server that sends headers and stalls is failing) but not kept


def _first_port(pod: Pod) -> str:
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if isinstance(p, dict) and p.get("containerPort"):
                return str(p["containerPort"])
    return "80"


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
    def __init__(self, list_pods: Callable[[], list[Pod]], *, interval: float = 10.0) -> None:
        self.list_pods = list_pods
        self.interval = interval
        self.results: dict[str, tuple[float, list[dict[str, Any]]]] = {}  # pod uid -> (time, samples)
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

    async def check(self, pod: Pod, url: str) -> None:
        began = time.monotonic()
        code = await self.get(url)
        took = time.monotonic() - began
        labels = {"url": url}
        self.results[str(pod["metadata"].get("uid", ""))] = (time.time(), [
            {"name": "probe_success", "labels": labels, "value": 1.0 if 200 <= code < 400 else 0.0},
            {"name": "probe_http_status_code", "labels": labels, "value": float(code)},
            {"name": "probe_duration_seconds", "labels": labels, "value": took}])

    async def check_all(self) -> None:
        pods = [(p, url) for p in self.list_pods() for url in [check_url(p)] if url]
        live = {str(p["metadata"].get("uid", "")) for p, _ in pods}
        for uid in set(self.results) - live:
            del self.results[uid]
        await asyncio.gather(*(self.check(p, url) for p, url in pods))

    def for_pod(self, uid: str) -> list[dict[str, Any]]:
        """The pod's check samples in the Summary API's ``customMetrics`` shape (fresh ones only)."""
        hit = self.results.get(uid)
        if hit is None or time.time() - hit[0] > 3 * self.interval:
            return []
        return hit[1]

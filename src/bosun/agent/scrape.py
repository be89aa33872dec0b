"""Custom metrics of this node's pods: every pod annotated ``prometheus.io/scrape: "true"``
is scraped, once Ready, on ``http://<podIP>:<prometheus.io/port><prometheus.io/path>`` (default port 80,
path /metrics) every ``interval`` seconds, its Prometheus text parsed with prometheus-client's
parser, and the samples served with the node's Summary API for the control plane's history.

The agent scrapes, not the API server: pod IPs are reachable from their node, the work is
spread over the nodes as kubelet's is, and the control plane reads one document per node.
A pod whose endpoint fails or serves text that does not parse gets a Warning event
(``MetricsScrapeFailed``, once per distinct problem) and no samples; other pods are unaffected.
Rounds are lined up on the wall clock: each starts :data:`LEAD` seconds before a multiple of
``interval``, the control plane's history reads the nodes just after that multiple (its own
grid, :mod:`bosun.monitoring.collector`, at the same default 10 s), so a scraped value is
about a second old when it lands rather than anything up to a whole interval. Each node
does this on its own clock; one that is off by some seconds only loses that alignment.
Next to it run the HTTP checks of pods and Services (:mod:`bosun.agent.httpcheck`), whose
results travel with the scraped samples.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bosun.agent.httpcheck import MIN_INTERVAL, HttpChecker
from bosun.aio import cancel_and_wait
from bosun.client.events import EventRecorder

log = logging.getLogger(__name__)
Pod = dict[str, Any]

SCRAPE = "prometheus.io/scrape"
PORT = "prometheus.io/port"
PATH = "prometheus.io/path"
TIMEOUT = 3.0
MAX_BYTES = 1 << 20
MAX_SAMPLES = 2000  # per pod: a runaway exporter must not grow the node's or the server's memory
LEAD = 1.0  # seconds a round starts before the grid (a quarter of a shorter interval)


def until_next_round(interval: float, now: float) -> float:
    """Seconds from ``now`` to the next round's start, ``LEAD`` before a multiple of ``interval``
    (at least a quarter interval away, so that two rounds are never back to back)."""
    lead = min(LEAD, interval / 4)
    wait = interval - lead - (now % interval)
    return wait + interval if wait < interval / 4 else wait


class ScrapeError(Exception):
    """Why one pod's scrape gave nothing (said in its event)."""


@dataclass(frozen=True, slots=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def target_url(pod: Pod) -> str | None:
    """Where to scrape ``pod``, or None when it does not ask to be (or cannot be yet)."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    if str(annotations.get(SCRAPE, "")).lower() != "true":
        return None
    status = pod.get("status") or {}
    ip = status.get("podIP")
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    if status.get("phase") != "Running" or not ip or not ready:
        return None  # a pod still starting is not a failed scrape
    port = str(annotations.get(PORT) or "80")
    path = str(annotations.get(PATH) or "/metrics")
    if not path.startswith("/"):
        path = "/" + path
    host = f"[{ip}]" if ":" in ip else ip
    return f"http://{host}:{port}{path}"


def parse(text: str) -> list[Sample]:
    """Prometheus text exposition into samples (NaN and infinities left out)."""
    out: list[Sample] = []
    try:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                value = float(s.value)
                if math.isfinite(value):
                    out.append(Sample(s.name, dict(s.labels), value))
                    if len(out) > MAX_SAMPLES:
                        raise ScrapeError(f"more than {MAX_SAMPLES} samples")
    except ScrapeError:
        raise
    except Exception as exc:  # the parser raises ValueError, IndexError, ... on bad text
        raise ScrapeError(f"malformed Prometheus text: {exc or type(exc).__name__}") from exc
    return out


class PodScraper:
    def __init__(self, list_pods: Callable[[], list[Pod]], recorder: EventRecorder, *,
                 interval: float = 10.0, list_services: Callable[[], list[Pod]] = list,
                 list_slices: Callable[[], list[Pod]] = list, list_nodes: Callable[[], list[Pod]] = list,
                 node_name: str = "") -> None:
        self.list_pods = list_pods
        self.recorder = recorder
        self.interval = interval
        # pod uid -> (time, samples) of its last good scrape
        self.samples: dict[str, tuple[float, list[Sample]]] = {}
        self._problems: dict[str, str] = {}
        self._session: aiohttp.ClientSession | None = None
        self.checks = HttpChecker(list_pods, interval=interval, list_services=list_services,
                                  list_slices=list_slices, list_nodes=list_nodes, node_name=node_name)

    async def close(self) -> None:
        await self.checks.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fetch(self, url: str) -> str:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT))
        try:
            async with self._session.get(url, headers={"Accept": "text/plain"}) as resp:
                if resp.status != 200:
                    raise ScrapeError(f"HTTP {resp.status}")
                body = await resp.content.read(MAX_BYTES + 1)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise ScrapeError(str(exc) or type(exc).__name__) from exc
        if len(body) > MAX_BYTES:
            raise ScrapeError(f"answer larger than {MAX_BYTES} bytes")
        return body.decode("utf-8", errors="replace")

    async def scrape(self, pod: Pod, url: str) -> None:
        uid = pod["metadata"].get("uid", "")
        try:
            samples = parse(await self.fetch(url))
        except ScrapeError as exc:
            self.samples.pop(uid, None)
            problem = str(exc)
            if self._problems.get(uid) != problem:
                self._problems[uid] = problem
                self.recorder.event(pod, "Warning", "MetricsScrapeFailed", f"scraping {url} failed: {problem}")
            return
        self._problems.pop(uid, None)
        self.samples[uid] = (time.time(), samples)

    async def scrape_all(self) -> None:
        pods = [(p, url) for p in self.list_pods() for url in [target_url(p)] if url]
        live = {p["metadata"].get("uid", "") for p, _ in pods}
        for uid in set(self.samples) - live:
            self.samples.pop(uid, None)
        for uid in set(self._problems) - live:
            self._problems.pop(uid, None)
        await asyncio.gather(*(self.scrape(p, url) for p, url in pods))

    def for_pod(self, uid: str) -> list[dict[str, Any]]:
        """The pod's samples and HTTP check results as the Summary API carries them (fresh ones only)."""
        hit = self.samples.get(uid)
        checks = self.checks.for_pod(uid)
        if hit is None or time.time() - hit[0] > 3 * self.interval:
            return checks
        return [{"name": s.name, "labels": s.labels, "value": s.value} for s in hit[1]] + checks

    async def run(self) -> None:
        # The HTTP checks keep their own time (each has its interval).
        checks = asyncio.create_task(self._checks(), name="agent-http-checks")
        try:
            while True:
                try:
                    await self.scrape_all()
                except Exception:
                    log.exception("scraping pods' metrics failed")
                await asyncio.sleep(until_next_round(self.interval, time.time()))
        finally:
            await cancel_and_wait(checks)
            await self.close()

    async def _checks(self) -> None:
        while True:
            try:
                await self.checks.check_all()
            except Exception:
                log.exception("HTTP checks failed")
            await asyncio.sleep(min(MIN_INTERVAL, self.interval))

"""One ``/metrics`` for a server with API workers, whichever process a scrape reaches.

Each API process counts its own requests; a Prometheus scrape lands on one process at random
(the kernel spreads connections), so alone each would show a share that jumps between scrapes.
The processes' expositions are summed instead, series by series, as if one process had served
everything: every metric here is a counter, a histogram or a gauge of things in flight, all of
which add up across processes.

Workers push their exposition to the owner every :data:`PUSH_SECONDS` over their store
channel; the process answering a scrape merges its own fresh figures with the others' latest
(a worker's asks the owner for the owner's and the other workers'). Another process's figures
are thus up to that old, as a scrape's are in Prometheus anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

log = logging.getLogger(__name__)

PUSH_SECONDS = 2.0
Exposition = Callable[[], bytes]


def merge(expositions: Iterable[bytes]) -> bytes:
    """The Prometheus text of several processes' expositions, each series summed."""
    families: dict[str, Metric] = {}
    sums: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for text in expositions:
        for fam in text_string_to_metric_families(text.decode()):
            families.setdefault(fam.name, Metric(fam.name, fam.documentation, fam.type, fam.unit))
            series = sums.setdefault(fam.name, {})
            for s in fam.samples:
                if s.name.endswith("_created"):  # a timestamp, not a quantity: it does not add up
                    continue
                key = (s.name, tuple(sorted(s.labels.items())))
                series[key] = series.get(key, 0.0) + s.value
    for name, fam in families.items():
        fam.samples = [Sample(sample, dict(labels), value) for (sample, labels), value in sums[name].items()]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(list(families.values())))
    return generate_latest(registry)


class _Fixed:
    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> list[Metric]:
        return self.metrics


class OwnerPeers:
    """The owner's side: the workers' latest expositions, and the operations workers call."""

    def __init__(self, own: Exposition) -> None:
        self.own = own
        self.latest: dict[int, bytes] = {}

    def ops(self) -> dict[str, Callable[..., Awaitable[object]]]:
        return {"metrics_push": self.push, "metrics_peers": self.for_worker}

    async def push(self, index: int, body: bytes) -> None:
        self.latest[int(index)] = body

    async def for_worker(self, index: int) -> list[bytes]:
        """For worker ``index``'s scrape: the owner's figures and the other workers'."""
        return [self.own(), *(body for i, body in self.latest.items() if i != int(index))]

    async def for_owner(self) -> list[bytes]:
        return list(self.latest.values())


Call = Callable[..., Awaitable[object]]


async def push_forever(call: Call, index: int, own: Exposition) -> None:
    """A worker's side: its exposition to the owner every :data:`PUSH_SECONDS`."""
    while True:
        with contextlib.suppress(Exception):  # the owner gone: the worker is about to exit anyway
            await call("metrics_push", index, own())
        await asyncio.sleep(PUSH_SECONDS)


def worker_peers(call: Call, index: int) -> Callable[[], Awaitable[list[bytes]]]:
    async def peers() -> list[bytes]:
        got = await call("metrics_peers", index)
        assert isinstance(got, list)
        return [bytes(b) for b in got]

    return peers

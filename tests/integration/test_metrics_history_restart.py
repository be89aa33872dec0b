"""The metrics history survives a restart of the API server: what the collector recorded
before (a pod's restart counts, at a 1 s resolution) is answered by ``/metrics/query_range``
of the next server on the same data directory, from the snapshot the first wrote at stop; a
server that runs writes it every ``snapshot_interval`` too, and the file stays the size of the
rings."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import RunningServer, start_server
from tests.integration.helpers import create_namespace, eventually

from bosun.client.rest import Client
from bosun.controllers._common import resource
from bosun.monitoring.history import HistoryConfig
from bosun.monitoring.snapshot import FILENAME

pytestmark = pytest.mark.timeout(180)

PODS = resource("", "v1", "pods")
HISTORY = HistoryConfig(retention=300.0, resolution=1.0, snapshot_interval=1.0)


async def restarts(server: RunningServer, ns: str, count: int) -> None:
    async with Client.from_kubeconfig(server.kubeconfig) as c:
        if count == 0:
            await create_namespace(c, ns)
            await c.create(PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
                                  "spec": {"containers": [{"name": "app", "image": "x"}]}}, ns)
        status = [{"name": "app", "restartCount": count, "ready": True, "image": "x", "imageID": "",
                   "state": {"running": {}}}]
        await c.patch(PODS, "web", {"status": {"phase": "Running", "containerStatuses": status}}, ns,
                      subresource="status")

        async def seen() -> Any:
            out = await c.request("GET", "/metrics/query",
                                  params={"query": f'pod_container_restarts_total{{namespace="{ns}"}} == {count}'})
            return out["data"]["result"]

        await eventually(seen, 30, f"restart count {count} in the history", step=0.2)


async def matrix(server: RunningServer, query: str, start: float, end: float) -> list[dict[str, Any]]:
    async with Client.from_kubeconfig(server.kubeconfig) as c:
        out = await c.request("GET", "/metrics/query_range",
                              params={"query": query, "start": str(start), "end": str(end), "step": "1"})
        return list(out["data"]["result"])


def test_history_is_answered_after_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "server"
    ns = f"hr-{uuid.uuid4().hex[:8]}"
    query = f'pod_container_restarts_total{{namespace="{ns}"}}'
    first = start_server(data, history=HISTORY)
    try:
        asyncio.run(restarts(first, ns, 0))
        began = time.time()
        time.sleep(3)
        asyncio.run(restarts(first, ns, 2))
        # Written while running, not only at stop (a crash loses at most the interval).
        snapshot = data / FILENAME
        asyncio.run(eventually(lambda: asyncio.sleep(0, snapshot.exists()), 10, "a snapshot while running"))
        time.sleep(2)
        ended = time.time()
        before = asyncio.run(matrix(first, query, began, ended))
    finally:
        first.stop()
    values = [v for _, v in before[0]["values"]]
    assert values[0] == "0" and values[-1] == "2", values
    # Bounded: the rings (series x 300 slots x 4 bytes) plus the labels, not a log of every round.
    series = len(first.api.monitoring.history)  # type: ignore[union-attr]
    assert snapshot.stat().st_size < series * 300 * 4 + 64 * 1024 + series * 300, (snapshot.stat().st_size, series)
    assert not snapshot.with_name(FILENAME + ".tmp").exists()

    time.sleep(3)  # a gap: the restart's slots hold no samples
    second = start_server(data, history=HISTORY)
    try:
        after = asyncio.run(matrix(second, query, began, ended))
        assert after == before, (after, before)  # every point recorded before the restart, as it was
        # And the history goes on: the new server's own rounds add to the restored series.
        asyncio.run(restarts(second, ns, 7))
        time.sleep(1.5)  # the steps are whole seconds from began: one at least after the new count
        now = time.time()
        ((series_after,),) = [asyncio.run(matrix(second, query, began, now))]
        times = [t for t, _ in series_after["values"]]
        assert times[0] == began and series_after["values"][-1][1] == "7", (now, series_after["values"])
        # The raw points have the gap: no samples while no server ran.
        async def points() -> list[float]:
            async with Client.from_kubeconfig(second.kubeconfig) as c:
                out = await c.request("GET", "/metrics/history", params={
                    "metric": "pod_container_restarts_total", "match": f"namespace={ns}", "start": str(began)})
                return [t for t, _ in out["series"][0]["points"]]

        raw = asyncio.run(points())
        assert raw[0] <= began and any(b - a >= 3 for a, b in itertools.pairwise(raw)), raw
    finally:
        second.stop()

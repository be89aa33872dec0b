"""``/metrics/query`` and ``/metrics/query_range`` through a real API server, over what its
collector recorded (pods' restart counts from their statuses, at a 1 s resolution): the
matrix as Prometheus' ``/api/v1/query_range`` answers it, vector matching with
``group_left``, ``offset``, and the errors (400 naming the position of a syntax error, 422 for
a match that is not unique), also through kubectl."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from tests.conftest import RunningServer, served
from tests.integration.helpers import create_namespace, eventually

from bosun.client.errors import ApiError
from bosun.client.rest import Client
from bosun.controllers._common import resource
from bosun.monitoring.history import HistoryConfig

pytestmark = pytest.mark.timeout(120)

PODS, NAMESPACES = resource("", "v1", "pods"), resource("", "v1", "namespaces")
RESTARTS = "pod_container_restarts_total"
Obj = dict[str, Any]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from served(tmp_path_factory.mktemp("query-range"), history=HistoryConfig(retention=300.0, resolution=1.0))


@pytest.fixture
async def client(server: RunningServer) -> AsyncIterator[Client]:
    async with Client.from_kubeconfig(server.kubeconfig) as c:
        yield c


async def restarted(c: Client, ns: str, pod: str, count: int) -> None:
    """Give ``pod`` (created if missing) a container that restarted ``count`` times."""
    try:
        await c.create(PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod},
                              "spec": {"containers": [{"name": "app", "image": "x"}]}}, ns)
    except ApiError as e:
        if e.status != 409:
            raise
    status = [{"name": "app", "restartCount": count, "ready": True, "image": "x", "imageID": "",
               "state": {"running": {}}}]
    await c.patch(PODS, pod, {"status": {"phase": "Running", "containerStatuses": status}}, ns,
                  subresource="status")


async def instant(c: Client, query: str) -> list[Obj]:
    out = await c.request("GET", "/metrics/query", params={"query": query})
    assert out["status"] == "success" and out["data"]["resultType"] == "vector", out
    return list(out["data"]["result"])


async def refused(c: Client, path: str, **params: str) -> ApiError:
    with pytest.raises(ApiError) as err:
        await c.request("GET", path, params=params)
    assert err.value.body["kind"] == "Status", err.value.body
    return err.value


async def test_query_range_matrix_matching_offset_and_errors(server: RunningServer, client: Client) -> None:
    c = client
    ns = f"qr-{uuid.uuid4().hex[:8]}"
    await create_namespace(c, ns)
    try:
        sel = f'{RESTARTS}{{namespace="{ns}"}}'
        await restarted(c, ns, "web-1", 1)
        await restarted(c, ns, "web-2", 3)
        await eventually(lambda: instant(c, f'{sel} == 1'), 30, "web-1's first count in the history", step=0.2)
        began = time.time()
        await asyncio.sleep(3)
        await restarted(c, ns, "web-1", 4)
        await eventually(lambda: instant(c, f'{RESTARTS}{{namespace="{ns}",pod="web-1"}} == 4'), 30,
                         "web-1's new count", step=0.2)
        await asyncio.sleep(2)
        end = time.time()

        out = await c.request("GET", "/metrics/query_range", params={
            "query": f'{RESTARTS}{{namespace="{ns}",pod="web-1"}}', "start": str(began), "end": str(end),
            "step": "1s"})
        assert out["status"] == "success" and out["data"]["resultType"] == "matrix", out
        (series,) = out["data"]["result"]
        assert series["metric"] == {"__name__": RESTARTS, "namespace": ns, "pod": "web-1", "container": "app",
                                    "node": ""}
        times = [t for t, _ in series["values"]]
        values = [v for _, v in series["values"]]
        assert times == [began + i for i in range(len(times))] and len(times) >= 5, series
        assert values[0] == "1" and values[-1] == "4" and values == sorted(values), values  # strings, as Prometheus'

        # offset: the same series as it was 4 s earlier than each step.
        back = await c.request("GET", "/metrics/query_range", params={
            "query": f'{RESTARTS}{{namespace="{ns}",pod="web-1"}} offset 4s', "start": str(end - 1),
            "end": str(end), "step": "1"})
        assert back["data"]["result"][0]["values"][0][1] == "1", back

        # group_left: each pod's share of its namespace's restarts (1 + 3 before, 4 + 3 now).
        share = (f"{sel} / on(namespace) group_left sum by (namespace) ({sel})")
        got = {r["metric"]["pod"]: r["value"][1] for r in await instant(c, share)}
        assert got == {"web-1": str(4 / 7), "web-2": str(3 / 7)}, got
        ranged = await c.request("GET", "/metrics/query_range", params={
            "query": share, "start": str(began), "end": str(end), "step": "2"})
        firsts = {r["metric"]["pod"]: r["values"][0][1] for r in ranged["data"]["result"]}
        assert firsts == {"web-1": "0.25", "web-2": "0.75"}, ranged

        # Errors: a syntax error names its line and column, parameters name themselves...
        err = await refused(c, "/metrics/query_range", query="sum(rate(x[5m])", start="-1m", end="-0s", step="5")
        assert err.status == 400 and err.message.startswith("query: 1:16: unexpected end of expression"), err.message
        err = await refused(c, "/metrics/query_range", query=sel, start="-1m", end="-0s")
        assert err.status == 400 and err.message.startswith("step: required"), err.message
        err = await refused(c, "/metrics/query_range", query=sel, start="-1m", end="-0s", step="0s")
        assert err.status == 400 and "step: must be more than zero" in err.message, err.message
        err = await refused(c, "/metrics/query_range", query=sel, start="-1d", end="-0s", step="1")
        assert err.status == 400 and "maximum of 11000 points" in err.message, err.message
        err = await refused(c, "/metrics/query_range", query=sel, start="-1m", end="-2m", step="1")
        assert err.status == 400 and err.message == "end: must not be before start", err.message
        # ... and a match that is not unique is Prometheus' execution error, a 422.
        err = await refused(c, "/metrics/query", query=f"{sel} + on(namespace) {sel}")
        assert err.status == 422 and "many-to-many matching not allowed" in err.message, err.message

        # kubectl reads it as any raw path.
        query = urlencode({"query": f"sum({sel})", "start": str(end - 2), "end": str(end), "step": "1s"})
        raw = await asyncio.to_thread(
            subprocess.run, ["/usr/bin/kubectl", "--kubeconfig", server.kubeconfig, "get", "--raw",
                             f"/metrics/query_range?{query}"], capture_output=True, text=True, timeout=30)
        assert raw.returncode == 0, raw.stderr
        matrix = json.loads(raw.stdout)["data"]["result"]
        assert matrix == [{"metric": {}, "values": [[end - 2, "7"], [end - 1, "7"], [end, "7"]]}], matrix
    finally:
        await c.delete(NAMESPACES, ns)




async def test_subqueries_at_and_functions_through_the_api(server: RunningServer, client: Client) -> None:
    """Subqueries, ``@ start()``/``@ end()`` and functions over what the collector recorded, as
    ``/metrics/query`` and ``/metrics/query_range`` answer them; their errors are a 400 naming
    the position (syntax) or a 422 (a result that is not a vector)."""
    c = client
    ns = f"qf-{uuid.uuid4().hex[:8]}"
    await create_namespace(c, ns)
    try:
        one = f'{RESTARTS}{{namespace="{ns}",pod="web-1"}}'
        await restarted(c, ns, "web-1", 1)
        await restarted(c, ns, "web-2", 3)
        await eventually(lambda: instant(c, f"{one} == 1"), 30, "web-1's first count in the history", step=0.2)
        began = time.time()
        await asyncio.sleep(3)
        await restarted(c, ns, "web-1", 4)
        await eventually(lambda: instant(c, f"{one} == 4"), 30, "web-1's new count", step=0.2)
        await asyncio.sleep(2)
        end = time.time()

        # Functions and a subquery, instant.
        (changed,) = await instant(c, f"changes({one}[1m])")
        assert changed["value"][1] == "1" and "__name__" not in changed["metric"], changed
        (low,) = await instant(c, f"min_over_time({one}[1m:1s])")
        assert low["value"][1] == "1", low
        (jumps,) = await instant(c, f"max_over_time(delta({one}[2s])[1m:1s]) > 0")
        assert float(jumps["value"][1]) > 0, jumps
        named = await instant(c, f'label_replace({RESTARTS}{{namespace="{ns}"}}, "app", "$1", "pod", "(web)-.*")')
        assert sorted((r["metric"]["app"], r["metric"]["pod"]) for r in named) == [("web", "web-1"), ("web", "web-2")]
        (total,) = await instant(c, f'scalar(sum({RESTARTS}{{namespace="{ns}"}})) * vector(2)')
        assert total["value"][1] == "14", total

        # @ start() / @ end(): every step reads the same time.
        for at, want in (("start()", "1"), ("end()", "4")):
            out = await c.request("GET", "/metrics/query_range", params={
                "query": f"{one} @ {at}", "start": str(began), "end": str(end), "step": "1s"})
            (series,) = out["data"]["result"]
            assert {v for _, v in series["values"]} == {want} and len(series["values"]) >= 5, (at, series)
        out = await c.request("GET", "/metrics/query", params={"query": f"{one} @ {began}"})
        assert out["data"]["result"][0]["value"][1] == "1", out

        # A range query of a subquery: each step's maximum over the 10 s before it.
        out = await c.request("GET", "/metrics/query_range", params={
            "query": f"max_over_time({one}[10s:1s])", "start": str(began), "end": str(end), "step": "1"})
        (series,) = out["data"]["result"]
        values = [v for _, v in series["values"]]
        assert values[0] == "1" and values[-1] == "4" and values == sorted(values), values

        err = await refused(c, "/metrics/query_range", query=f"max_over_time({one}[5m:1m)", start="-1m",
                            end="-0s", step="5")
        assert err.status == 400 and err.message.startswith(f"query: 1:{len(one) + 21}: unexpected ')'"), err.message
        err = await refused(c, "/metrics/query", query=f"sum({one}) @ end()")
        assert err.status == 400 and err.message.startswith(f"query: 1:{len(one) + 7}: unexpected '@'"), err.message
        err = await refused(c, "/metrics/query",
                            query=f'label_replace({RESTARTS}{{namespace="{ns}"}}, "pod", "same", "pod", ".*")')
        assert err.status == 422 and "same labelset" in err.message, err.message
    finally:
        await c.delete(NAMESPACES, ns)

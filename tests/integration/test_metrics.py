"""Resource metrics end to end inside one process: a real API server, a real agent with the
process driver running real processes, the agent's Summary API and Prometheus endpoint, and
the metrics.k8s.io API and the API server's own /metrics read over HTTPS."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.conftest import RunningServer, served
from tests.integration.helpers import BARE_POD_CIDR

from bosun.agent.agent import Agent
from bosun.agent.config import AgentConfig
from bosun.agent.runtime.process import ProcessDriver
from bosun.api.quantity import parse_quantity
from bosun.client.kubeconfig import ClusterConfig
from bosun.client.rest import Client
from bosun.controllers._common import resource

pytestmark = pytest.mark.timeout(90)


PODS, NAMESPACES, NODES = (resource("", "v1", p) for p in ("pods", "namespaces", "nodes"))
BURN = "while True: pass"
HOLD = "import time; b = bytearray(96 * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(600)"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    yield from served(tmp_path_factory.mktemp("metrics-server"))


class Env:
    def __init__(self, server: RunningServer, agent: Agent, client: Client, http: aiohttp.ClientSession,
                 namespace: str) -> None:
        self.server, self.agent, self.client, self.http, self.namespace = server, agent, client, http, namespace

    async def api(self, path: str, token: str | None = None, **headers: str) -> tuple[int, Any]:
        tok = self.server.token if token is None else token
        async with self.http.get(self.server.url + path, headers={"Authorization": f"Bearer {tok}", **headers},
                                 ssl=False) as resp:
            body = await resp.read()
            ctype = resp.headers.get("Content-Type", "")
            return resp.status, (await resp.json(content_type=None)) if "json" in ctype else body.decode()

    async def agent_get(self, path: str, token: str | None = None) -> tuple[int, str]:
        tok = self.server.token if token is None else token
        async with self.http.get(f"https://127.0.0.1:{self.agent.port}{path}",
                                 headers={"Authorization": f"Bearer {tok}"}, ssl=False) as resp:
            return resp.status, await resp.text()


@pytest.fixture
def ca(server: RunningServer) -> bytes:
    return Path(server.ca_path).read_bytes()


@pytest.fixture
async def env(server: RunningServer, ca: bytes, tmp_path: Path, namespace: str) -> AsyncIterator[Env]:
    client = Client(ClusterConfig(server=server.url, ca_data=ca, token=server.token))
    name = f"m-{namespace[-10:]}".lower()
    config = AgentConfig(node_name=name, data_dir=tmp_path / "agent", listen_host="127.0.0.1", listen_port=0,
                         relist_interval=0.2, status_flush_interval=0.05, node_network=False,
                         pod_cidr=BARE_POD_CIDR)  # a bare API server: no IPAM controller
    driver = ProcessDriver(config.runtime_dir / "process", "127.0.0.1")
    agent = Agent(client, config, driver, node_ip="127.0.0.1")
    http = aiohttp.ClientSession()
    try:
        await agent.start()
        await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        yield Env(server, agent, client, http, namespace)
    finally:
        await agent.stop()
        for c in await driver.list_containers():
            with contextlib.suppress(Exception):
                await driver.remove_container(c.id)
        with contextlib.suppress(Exception):
            await client.delete(NODES, name)
        await http.close()
        await client.close()


async def _run(env: Env, name: str, code: str, labels: dict[str, str] | None = None) -> None:
    body = {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": env.namespace, "labels": labels or {}},
            "spec": {"nodeName": env.agent.config.node_name, "terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "main", "image": "host", "command": ["python3", "-c", code]}]}}
    await env.client.create(PODS, body, env.namespace)


async def _until_running(env: Env, *names: str) -> None:
    deadline = time.monotonic() + 30
    for name in names:
        while True:
            pod = await env.client.get(PODS, name, env.namespace)
            if pod.get("status", {}).get("phase") == "Running":
                break
            assert time.monotonic() < deadline, pod.get("status")
            await asyncio.sleep(0.1)


def _families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


async def test_agent_serves_summary_and_prometheus_with_real_usage(env: Env) -> None:
    await _run(env, "burn", BURN)
    await _run(env, "hold", HOLD)
    await _until_running(env, "burn", "hold")
    await asyncio.sleep(1.5)

    status, text = await env.agent_get("/stats/summary")
    assert status == 200
    summary = json.loads(text)
    assert summary["node"]["nodeName"] == env.agent.config.node_name
    assert summary["node"]["cpu"]["usageNanoCores"] > 0
    assert summary["node"]["memory"]["workingSetBytes"] > 0
    pods = {p["podRef"]["name"]: p for p in summary["pods"] if p["podRef"]["namespace"] == env.namespace}
    assert set(pods) == {"burn", "hold"}
    burn = pods["burn"]["containers"][0]
    assert burn["name"] == "main"
    # A busy loop uses most of one core (the machine may be shared, so not all of it).
    assert 150_000_000 < burn["cpu"]["usageNanoCores"] < 1_200_000_000
    assert pods["hold"]["containers"][0]["memory"]["workingSetBytes"] > 96 * 2**20

    status, text = await env.agent_get("/metrics")
    assert status == 200
    fams = _families(text)
    cpu = {s.labels["pod"]: s.value for s in fams["container_cpu_usage_seconds"].samples
           if s.labels.get("namespace") == env.namespace}
    mem = {s.labels["pod"]: s.value for s in fams["container_memory_working_set_bytes"].samples
           if s.labels.get("namespace") == env.namespace}
    assert cpu["burn"] > cpu["hold"] and cpu["burn"] > 0.1
    assert mem["hold"] > 96 * 2**20
    assert fams["node_cpu_usage_seconds"].samples[0].value > 0
    assert fams["node_memory_working_set_bytes"].samples[0].value > 0

    assert (await env.agent_get("/metrics", token="not-a-token"))[0] == 401
    assert (await env.agent_get("/stats/summary", token="not-a-token"))[0] == 401


async def test_metrics_api_is_discovered_but_not_stored(env: Env) -> None:
    status, groups = await env.api("/apis")
    assert status == 200
    entry = next(g for g in groups["groups"] if g["name"] == "metrics.k8s.io")
    assert entry["preferredVersion"]["groupVersion"] == "metrics.k8s.io/v1beta1"
    status, group = await env.api("/apis/metrics.k8s.io")
    assert status == 200 and group["kind"] == "APIGroup"
    status, rl = await env.api("/apis/metrics.k8s.io/v1beta1")
    kinds = {r["name"]: (r["kind"], r["namespaced"]) for r in rl["resources"]}
    assert kinds == {"nodes": ("NodeMetrics", False), "pods": ("PodMetrics", True)}
    status, agg = await env.api(
        "/apis", Accept="application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList")
    item = next(i for i in agg["items"] if i["metadata"].get("name") == "metrics.k8s.io")
    assert {r["resource"] for r in item["versions"][0]["resources"]} == {"nodes", "pods"}
    # Read-only: no create, no watch.
    async with env.http.post(env.server.url + "/apis/metrics.k8s.io/v1beta1/nodes", json={},
                             headers={"Authorization": f"Bearer {env.server.token}"}, ssl=False) as resp:
        assert resp.status == 405


async def test_node_and_pod_metrics_in_kubectl_top_shape(env: Env) -> None:
    await _run(env, "burn", BURN, {"app": "burn"})
    await _run(env, "hold", HOLD, {"app": "hold"})
    await _until_running(env, "burn", "hold")
    node = env.agent.config.node_name

    status, nm = await env.api(f"/apis/metrics.k8s.io/v1beta1/nodes/{node}")
    assert status == 200, nm
    assert nm["kind"] == "NodeMetrics" and nm["metadata"]["name"] == node
    assert nm["usage"]["cpu"].endswith("n") and nm["usage"]["memory"].endswith("Ki")
    assert nm["window"].endswith("s") and nm["timestamp"].endswith("Z")
    status, nodes = await env.api("/apis/metrics.k8s.io/v1beta1/nodes")
    assert nodes["kind"] == "NodeMetricsList"
    assert node in {i["metadata"]["name"] for i in nodes["items"]}

    ns = env.namespace
    # Summaries are cached for a few seconds: poll as a user re-running `kubectl top` would.
    deadline = time.monotonic() + 20
    while True:
        status, pods = await env.api(f"/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods")
        assert status == 200 and pods["kind"] == "PodMetricsList"
        by_name = {p["metadata"]["name"]: p for p in pods["items"]}
        assert set(by_name) == {"burn", "hold"}
        burn = by_name["burn"]["containers"][0]
        assert burn["name"] == "main"
        hold_memory = parse_quantity(by_name["hold"]["containers"][0]["usage"]["memory"])
        # The control plane's metrics history reads summaries too: the cached one may
        # predate the hold process's allocation.
        if (parse_quantity(burn["usage"]["cpu"]) > parse_quantity("150m") and hold_memory > 96 * 2**20) \
                or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert parse_quantity(burn["usage"]["cpu"]) > parse_quantity("150m")
    assert parse_quantity(by_name["hold"]["containers"][0]["usage"]["memory"]) > 96 * 2**20
    assert by_name["burn"]["metadata"]["labels"] == {"app": "burn"}

    status, one = await env.api(f"/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods/hold")
    assert status == 200 and one["kind"] == "PodMetrics" and one["metadata"]["namespace"] == ns
    status, sel = await env.api(f"/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods?labelSelector=app%3Dburn")
    assert [p["metadata"]["name"] for p in sel["items"]] == ["burn"]
    status, everywhere = await env.api("/apis/metrics.k8s.io/v1beta1/pods")
    assert {"burn", "hold"} <= {p["metadata"]["name"] for p in everywhere["items"]
                                if p["metadata"]["namespace"] == ns}

    status, missing = await env.api(f"/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods/nope")
    assert status == 404 and missing["kind"] == "Status"
    # A pod bound to a node without an agent has no metrics (left out, as metrics-server does).
    await env.client.create(PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ghost", "namespace": ns},
                                   "spec": {"nodeName": "no-such-node",
                                            "containers": [{"name": "c", "image": "host"}]}}, ns)
    status, pods = await env.api(f"/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods")
    assert "ghost" not in {p["metadata"]["name"] for p in pods["items"]}
    status, _ = await env.api(f"/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods/ghost")
    assert status == 404


async def test_api_server_prometheus_metrics(env: Env) -> None:
    await env.client.list(PODS, env.namespace)
    with contextlib.suppress(Exception):
        await env.client.get(PODS, "nope", env.namespace)
    status, text = await env.api("/metrics")
    assert status == 200
    fams = _families(text)
    reqs = fams["apiserver_request"].samples
    assert any(s.labels["verb"] == "LIST" and s.labels["resource"] == "pods" and s.labels["code"] == "200"
               for s in reqs)
    assert any(s.labels["verb"] == "GET" and s.labels["resource"] == "pods" and s.labels["code"] == "404"
               for s in reqs)
    assert any(s.name == "apiserver_request_duration_seconds_count" for s in
               fams["apiserver_request_duration_seconds"].samples)
    ops = {s.labels["operation"] for s in fams["etcd_request_duration_seconds"].samples}
    assert {"get", "list", "create"} <= ops
    assert "apiserver_longrunning_requests" in fams
    assert (await env.api("/metrics", token="wrong"))[0] == 401


async def test_history_records_the_agents_usage_disk_and_network(env: Env) -> None:
    """The API server's collector reads the same summaries into its history: a pod's memory,
    its disk (logs on the node) and the node's disk and network, queried as a user would."""
    await _run(env, "hold", HOLD)
    await _until_running(env, "hold")
    node = env.agent.config.node_name
    status, text = await env.agent_get("/stats/summary")
    summary = json.loads(text)
    assert summary["node"]["fs"]["capacityBytes"] >= summary["node"]["fs"]["usedBytes"] > 0
    assert summary["node"]["network"]["rxBytes"] >= 0
    (hold,) = [p for p in summary["pods"] if p["podRef"]["name"] == "hold"]
    assert hold["ephemeral-storage"]["usedBytes"] >= 0

    async def series(metric: str, match: str) -> list[Any]:
        status, body = await env.api(f"/metrics/history?metric={metric}&match={match}")
        assert status == 200, body
        return list(body["series"])

    # One collection round (10 s by default) puts the pod in the history.
    deadline = time.monotonic() + 40
    while True:
        found = await series("pod_memory_working_set_bytes", f"namespace={env.namespace},pod=hold")
        if found and max(p[1] for p in found[0]["points"]) > 96 * 2**20:
            break
        assert time.monotonic() < deadline, found
        await asyncio.sleep(1)
    assert found[0]["labels"] == {"namespace": env.namespace, "pod": "hold", "node": node}
    assert await series("pod_ephemeral_storage_used_bytes", f"namespace={env.namespace},pod=hold")
    assert await series("node_fs_used_bytes", f"node={node}")
    assert await series("node_network_receive_bytes_total", f"node={node}")
    status, body = await env.api("/metrics/history")
    assert status == 200 and "pod_cpu_usage_cores" in body["metrics"]
    status, body = await env.api("/metrics/history?metric=pod_cpu_usage_cores&start=yesterday")
    assert status == 400 and "start" in body["message"]
    for path in ("/metrics/history", "/federate"):  # authenticated like every other path
        status, _ = await env.api(path, token="not-a-token")
        assert status == 401, path
